-- Shoppers: registered (email and argon2id password hash) or guests (neither).
CREATE TABLE shoppers (
    id             uuid        PRIMARY KEY,
    email          text        CHECK (char_length(email) BETWEEN 3 AND 254),
    password_hash  text,
    locale         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((email IS NULL) = (password_hash IS NULL))
);
CREATE UNIQUE INDEX shoppers_email_key ON shoppers (lower(email)) WHERE email IS NOT NULL;

-- Session tokens, stored as SHA-256 digests; they expire and can be revoked.
CREATE TABLE shopper_sessions (
    token_hash  bytea       PRIMARY KEY,
    shopper_id  uuid        NOT NULL REFERENCES shoppers (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX shopper_sessions_shopper ON shopper_sessions (shopper_id);

-- Regions: where the store sells, in which currency, with which taxes and shipping options.
CREATE TABLE regions (
    code              text        PRIMARY KEY CHECK (code ~ '^[A-Z0-9_-]{2,16}$'),
    name              text        NOT NULL,
    currency          char(3)     NOT NULL,
    countries         text[]      NOT NULL,
    tax_inclusive     boolean     NOT NULL,
    tax_rates         jsonb       NOT NULL,
    shipping_options  jsonb       NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id              uuid        PRIMARY KEY,
    seller_id       uuid        NOT NULL REFERENCES sellers (id),
    default_locale  text        NOT NULL,
    base_currency   char(3)     NOT NULL,
    status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         bigint      NOT NULL DEFAULT 1
);
-- A seller's own listing, newest first (ids are UUIDv7: time-ordered).
CREATE INDEX products_seller ON products (seller_id, id DESC);

-- Content per locale, with a search vector stemmed in that locale's language.
CREATE TABLE product_content (
    product_id     uuid      NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    locale         text      NOT NULL,
    title          text      NOT NULL,
    description    text      NOT NULL DEFAULT '',
    search_config  regconfig NOT NULL,
    search         tsvector  GENERATED ALWAYS AS (
        setweight(to_tsvector(search_config, title), 'A') ||
        setweight(to_tsvector(search_config, description), 'B')
    ) STORED,
    PRIMARY KEY (product_id, locale)
);
CREATE INDEX product_content_search ON product_content USING gin (search);
-- Lets a search that walks products in price or date order test each one from the index alone.
CREATE INDEX product_content_match ON product_content (product_id, locale) INCLUDE (search);

CREATE TABLE variants (
    id             uuid     PRIMARY KEY,
    product_id     uuid     NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position       smallint NOT NULL,
    sku            text     NOT NULL,
    attributes     jsonb    NOT NULL DEFAULT '{}',
    weight_grams   integer  NOT NULL DEFAULT 0 CHECK (weight_grams >= 0),
    image_urls     text[]   NOT NULL DEFAULT '{}',
    stock_on_hand  integer  NOT NULL CHECK (stock_on_hand >= 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- SKUs are unique in the marketplace, compared without case.
CREATE UNIQUE INDEX variants_sku_key ON variants (upper(sku));
CREATE INDEX variants_product ON variants (product_id, position);
-- The storefront's in-stock filter.
CREATE INDEX variants_in_stock ON variants (product_id) WHERE stock_on_hand > 0;

-- Prices the seller set, per variant and currency.
CREATE TABLE variant_prices (
    variant_id  uuid          NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    currency    char(3)       NOT NULL,
    amount      numeric(20,4) NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (variant_id, currency)
);

-- The storefront's listing: per product and store currency, the lowest variant price
-- (explicit or converted) and whether the product is listed (active, of an active seller).
-- Rewritten with every product change, archive, seller suspension and exchange-rate change, so
-- listings, filters and sorts are walks of one table's indexes; products are joined only for
-- the rows of the page.
CREATE TABLE product_listing_prices (
    product_id  uuid          NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    seller_id   uuid          NOT NULL,
    currency    char(3)       NOT NULL,
    amount      numeric(20,4) NOT NULL,
    converted   boolean       NOT NULL,
    listed      boolean       NOT NULL,
    PRIMARY KEY (product_id, currency)
);
-- Each covers what a page needs, so choosing a page reads only the index.
CREATE INDEX product_listing_newest
    ON product_listing_prices (currency, product_id DESC) INCLUDE (amount, converted) WHERE listed;
CREATE INDEX product_listing_price
    ON product_listing_prices (currency, amount, product_id) INCLUDE (converted) WHERE listed;
CREATE INDEX product_listing_seller_newest
    ON product_listing_prices (seller_id, currency, product_id DESC) INCLUDE (amount, converted) WHERE listed;
CREATE INDEX product_listing_seller_price
    ON product_listing_prices (seller_id, currency, amount, product_id) INCLUDE (converted) WHERE listed;

-- Append-only record of every change to stock on hand.
CREATE TABLE stock_ledger (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    variant_id   uuid        NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    kind         text        NOT NULL CHECK (kind IN ('initial', 'set', 'adjust')),
    delta        integer     NOT NULL,
    stock_after  integer     NOT NULL CHECK (stock_after >= 0),
    reason       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_ledger_variant ON stock_ledger (variant_id, id);

-- Settings the catalog derived data was last built with (e.g. the exchange-rate fingerprint).
CREATE TABLE catalog_state (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
