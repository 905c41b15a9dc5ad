-- Flash sales: one SKU, a fixed quantity, a waiting queue and admissions to buy.
--
-- Stock: when a sale opens, its units move from the variant's free stock into `variants.held`
-- and are counted in `reserved` here. Admitting a ticket allots it a unit from `reserved` (in
-- the queue's batched step), and a purchase moves its ticket's allotment to a hold of its order
-- (tagged with the sale): the hot path writes only the shopper's own ticket row, never the
-- sale's or the variant's. A lapsed admission's allotment, and a cancelled purchase's units,
-- go back to `reserved` while the sale is open; when it ends, whatever is reserved or allotted
-- goes back to free stock. The variant's guard (held + sold <= on hand) stays the final word
-- on overselling; `reserved >= 0` and `allotted >= 0` are the sale's.
CREATE TABLE flash_sales (
    id                 uuid        PRIMARY KEY,
    seller_id          uuid        NOT NULL REFERENCES sellers (id),
    variant_id         uuid        NOT NULL REFERENCES variants (id),
    quantity           integer     NOT NULL CHECK (quantity > 0),
    -- Units taken from stock when the sale opened (the quantity, or less if stock ran short).
    allocated          integer     NOT NULL DEFAULT 0 CHECK (allocated >= 0 AND allocated <= quantity),
    -- Units of the allocation neither allotted to an admission nor claimed by an order.
    reserved           integer     NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= allocated),
    per_shopper_limit  integer     NOT NULL CHECK (per_shopper_limit > 0),
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    state              text        NOT NULL DEFAULT 'scheduled'
                       CHECK (state IN ('scheduled', 'open', 'sold_out', 'closed')),
    -- The admission cursor: every ticket up to it has been admitted (or skipped).
    admitted_through   bigint      NOT NULL DEFAULT 0,
    -- Recent admissions per second, for waiting shoppers' estimates.
    admissions_per_sec real        NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    opened_at          timestamptz,
    finished_at        timestamptz,
    CHECK (ends_at > starts_at)
);
CREATE INDEX flash_sales_live ON flash_sales (starts_at) WHERE state IN ('scheduled', 'open');
CREATE INDEX flash_sales_seller ON flash_sales (seller_id, created_at DESC);

CREATE TABLE flash_sale_prices (
    sale_id   uuid    NOT NULL REFERENCES flash_sales (id) ON DELETE CASCADE,
    currency  char(3) NOT NULL,
    amount    numeric NOT NULL CHECK (amount > 0),
    PRIMARY KEY (sale_id, currency)
);

-- One ticket per shopper and sale. Numbers come from the sale's counter in Redis (rebuilt from
-- here), so they order the queue across processes; the row makes a ticket durable once joined.
CREATE TABLE flash_sale_tickets (
    sale_id             uuid        NOT NULL REFERENCES flash_sales (id) ON DELETE CASCADE,
    shopper_id          uuid        NOT NULL REFERENCES shoppers (id) ON DELETE CASCADE,
    ticket              bigint      NOT NULL CHECK (ticket > 0),
    state               text        NOT NULL DEFAULT 'waiting'
                        CHECK (state IN ('waiting', 'admitted', 'purchased', 'expired', 'sold_out', 'closed')),
    -- Units bought under this ticket (the per-shopper limit is checked against it).
    bought              integer     NOT NULL DEFAULT 0 CHECK (bought >= 0),
    -- Units set aside for this ticket by its admission, until it buys or the admission lapses.
    allotted            integer     NOT NULL DEFAULT 0 CHECK (allotted >= 0),
    joined_at           timestamptz NOT NULL DEFAULT now(),
    admitted_at         timestamptz,
    admission_expires_at timestamptz,
    PRIMARY KEY (sale_id, shopper_id),
    UNIQUE (sale_id, ticket)
);
CREATE INDEX flash_sale_tickets_waiting ON flash_sale_tickets (sale_id, ticket) WHERE state = 'waiting';
CREATE INDEX flash_sale_tickets_admitted ON flash_sale_tickets (sale_id, admission_expires_at)
    WHERE state = 'admitted';

-- The units an order bought in a sale, so a cancelled purchase returns them to the sale.
ALTER TABLE stock_holds ADD COLUMN sale_id uuid REFERENCES flash_sales (id);
-- The queue's count of units in pending orders, every step.
CREATE INDEX stock_holds_sale_pending ON stock_holds (sale_id)
    WHERE sale_id IS NOT NULL AND released_at IS NULL AND sold_at IS NULL;

-- Secrets the store generates for itself once (e.g. the key signing flash-sale admissions),
-- shared by every process through the database.
CREATE TABLE store_secrets (
    name        text        PRIMARY KEY,
    secret      bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
