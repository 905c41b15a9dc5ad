-- Holds: stock reserved for a shopper's cart for a while. Units held and sold are counted on
-- the variant, and the guard below is the final word on overselling: no transaction that would
-- hold or sell more than is on hand can commit, whichever process or actor sent it.
ALTER TABLE variants
    ADD COLUMN held integer NOT NULL DEFAULT 0 CHECK (held >= 0),
    ADD COLUMN sold integer NOT NULL DEFAULT 0 CHECK (sold >= 0),
    ADD CONSTRAINT variants_stock_guard CHECK (held + sold <= stock_on_hand);

CREATE TABLE stock_holds (
    id           uuid        PRIMARY KEY,
    variant_id   uuid        NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    quantity     integer     NOT NULL CHECK (quantity > 0),
    -- Who holds it (a cart id), for releasing a cart's holds together.
    owner        text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    released_at  timestamptz
);
-- The expiry sweeper's scan: live holds by expiry.
CREATE INDEX stock_holds_live_expiry ON stock_holds (expires_at) WHERE released_at IS NULL;
CREATE INDEX stock_holds_owner ON stock_holds (owner) WHERE released_at IS NULL;
