-- Carts: a shopper's basket in one region. Each line's units are held through the inventory
-- shards (stock_holds.owner is the cart id) until checkout or expiry.
CREATE TABLE carts (
    id                uuid        PRIMARY KEY,
    shopper_id        uuid        NOT NULL REFERENCES shoppers (id) ON DELETE CASCADE,
    region            text        NOT NULL REFERENCES regions (code),
    shipping_country  text,
    shipping_option   text,
    shipping_address  jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX carts_shopper ON carts (shopper_id);

CREATE TABLE cart_lines (
    cart_id     uuid        NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    variant_id  uuid        NOT NULL REFERENCES variants (id),
    quantity    integer     NOT NULL CHECK (quantity > 0),
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, variant_id)
);
