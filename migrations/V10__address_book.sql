-- A registered shopper's address book (#19): at most 20 addresses (checked by the app under
-- the shopper's row lock), exactly one of them the default. `address` is a checked, normalized
-- address (src/addresses), copied into a cart when the shopper ships there, so later changes
-- of the book never change a cart or an order.
CREATE TABLE shopper_addresses (
    id          uuid        PRIMARY KEY,
    shopper_id  uuid        NOT NULL REFERENCES shoppers (id) ON DELETE CASCADE,
    address     jsonb       NOT NULL,
    is_default  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shopper_addresses_shopper ON shopper_addresses (shopper_id, created_at DESC);
-- Never two defaults, whatever the app does.
CREATE UNIQUE INDEX shopper_addresses_one_default ON shopper_addresses (shopper_id) WHERE is_default;

-- The shopper's carts, newest first, a page at a time (GET /api/v1/shoppers/me/carts).
CREATE INDEX carts_shopper_newest ON carts (shopper_id, id DESC);
