-- Orders, their per-seller parts, the order event log, payments and idempotency keys.
--
-- Checkout protocol (README, "Checkout and crash points"): one transaction claims the cart's
-- holds for a `pending` order with its payment row and idempotency key; the payment is then
-- authorized at the gateway; a second transaction marks the order `paid` and its holds sold
-- (or `cancelled` with the holds released). A pending order left by a crash is reconciled from
-- the gateway's record of its payment reference.

-- Holds claimed by an order no longer belong to the cart nor expire: the order decides their fate.
ALTER TABLE stock_holds
    ADD COLUMN order_id   uuid,
    -- When the order was paid: the held units are sold from then on.
    ADD COLUMN sold_at    timestamptz,
    -- When the sweep moved the sold units from `variants.held` to `variants.sold` (batched, so
    -- that a hot SKU's row is written once per sweep, not once per order).
    ADD COLUMN settled_at timestamptz;
DROP INDEX stock_holds_live_expiry;
CREATE INDEX stock_holds_live_expiry ON stock_holds (expires_at)
    WHERE released_at IS NULL AND order_id IS NULL;
CREATE INDEX stock_holds_order ON stock_holds (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX stock_holds_unsettled ON stock_holds (variant_id)
    WHERE sold_at IS NOT NULL AND settled_at IS NULL AND released_at IS NULL;

CREATE TABLE orders (
    id                uuid        PRIMARY KEY,
    shopper_id        uuid        NOT NULL REFERENCES shoppers (id),
    cart_id           uuid        NOT NULL,
    region            text        NOT NULL,
    currency          char(3)     NOT NULL,
    status            text        NOT NULL
                      CHECK (status IN ('pending', 'paid', 'fulfilled', 'cancelled', 'refunded')),
    subtotal          numeric     NOT NULL,
    tax_rate          numeric     NOT NULL,
    tax_included      boolean     NOT NULL,
    tax               numeric     NOT NULL,
    shipping          jsonb,
    total             numeric     NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_shopper ON orders (shopper_id, id DESC);
CREATE INDEX orders_pending ON orders (created_at) WHERE status = 'pending';

-- A marketplace order is fulfilled per seller: each seller's share is a part with its own state.
CREATE TABLE order_parts (
    order_id    uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seller_id   uuid        NOT NULL REFERENCES sellers (id),
    status      text        NOT NULL
                CHECK (status IN ('pending', 'paid', 'fulfilled', 'cancelled', 'refunded')),
    subtotal    numeric     NOT NULL,
    tax         numeric     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seller_id)
);
CREATE INDEX order_parts_seller ON order_parts (seller_id, order_id DESC);

CREATE TABLE order_lines (
    order_id    uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no     integer NOT NULL,
    seller_id   uuid    NOT NULL REFERENCES sellers (id),
    variant_id  uuid    NOT NULL REFERENCES variants (id),
    product_id  uuid    NOT NULL,
    sku         text    NOT NULL,
    title       text    NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric NOT NULL,
    line_total  numeric NOT NULL,
    tax         numeric NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Append-only: every state change of an order or of a seller's part. Its id orders the seller
-- feed and lets clients resume after the last event they saw.
CREATE TABLE order_events (
    id          bigserial   PRIMARY KEY,
    order_id    uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- The seller whose part changed; NULL for a change of the whole order.
    seller_id   uuid,
    kind        text        NOT NULL,
    status      text        NOT NULL,
    data        jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order ON order_events (order_id, id);

-- One payment per order: its reference is what the gateway knows it by.
CREATE TABLE payments (
    reference         uuid        PRIMARY KEY,
    order_id          uuid        NOT NULL UNIQUE REFERENCES orders (id) ON DELETE CASCADE,
    provider          text        NOT NULL,
    amount            numeric     NOT NULL,
    currency          char(3)     NOT NULL,
    card_last4        text        NOT NULL,
    status            text        NOT NULL
                      CHECK (status IN ('authorizing', 'authorized', 'captured', 'declined',
                                        'timed_out', 'voided')),
    authorization_id  text,
    refunded          numeric     NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_uncaptured ON payments (updated_at) WHERE status = 'authorized';

-- Stripe-style idempotency: a shopper's key and the fingerprint of the request it was first
-- used with; once the checkout has an outcome, the response every retry gets.
CREATE TABLE idempotency_keys (
    shopper_id      uuid        NOT NULL REFERENCES shoppers (id) ON DELETE CASCADE,
    key             text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    order_id        uuid        REFERENCES orders (id) ON DELETE SET NULL,
    response_status smallint,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shopper_id, key)
);

-- The sandbox payment gateway's own books. It stands in for a remote gateway, so it keeps its
-- record apart from Agora's (its own statements, never in Agora's transactions), and survives
-- a crash of the process that called it, as a remote gateway would.
CREATE TABLE sandbox_gateway_payments (
    reference         uuid        PRIMARY KEY,
    authorization_id  text        NOT NULL UNIQUE,
    amount            numeric     NOT NULL,
    currency          char(3)     NOT NULL,
    card_last4        text        NOT NULL,
    status            text        NOT NULL
                      CHECK (status IN ('authorized', 'captured', 'declined', 'voided')),
    captured          numeric     NOT NULL DEFAULT 0,
    refunded          numeric     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
