-- After the sale (#19): shipments by line, cancellations, returns and refunds by line or
-- amount. Every change also appends to order_events; every money movement is a `refunds` row
-- whose id is the reference the gateway knows it by (so a retried refund is not paid twice).

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN
    ('pending', 'paid', 'partially_fulfilled', 'fulfilled', 'cancelled', 'refunded'));
ALTER TABLE order_parts DROP CONSTRAINT order_parts_status_check;
ALTER TABLE order_parts ADD CONSTRAINT order_parts_status_check CHECK (status IN
    ('pending', 'paid', 'partially_fulfilled', 'fulfilled', 'cancelled', 'refunded'));

-- When the order was paid: a `cancelled` order with it was cancelled after the sale (sellers
-- see it); without it, its checkout failed (nobody but the shopper does).
ALTER TABLE orders ADD COLUMN paid_at timestamptz;
UPDATE orders SET paid_at = updated_at WHERE status IN ('paid', 'fulfilled', 'refunded');

-- What each seller's part has given back, by line or by amount (never more than it is worth).
ALTER TABLE order_parts ADD COLUMN refunded numeric NOT NULL DEFAULT 0 CHECK (refunded >= 0);
UPDATE order_parts p SET refunded = p.subtotal + CASE WHEN o.tax_included THEN 0 ELSE p.tax END
FROM orders o WHERE o.id = p.order_id AND p.status = 'refunded';

-- Each line's units: shipped, cancelled before shipping (back in stock), refunded (the
-- cancelled ones and shipped ones whose price went back) and returned (received back).
ALTER TABLE order_lines
    ADD COLUMN shipped   integer NOT NULL DEFAULT 0,
    ADD COLUMN cancelled integer NOT NULL DEFAULT 0,
    ADD COLUMN refunded  integer NOT NULL DEFAULT 0,
    ADD COLUMN returned  integer NOT NULL DEFAULT 0;
-- Parts refunded whole by earlier releases: unshipped units were cancelled, shipped ones refunded.
UPDATE order_lines l SET refunded = l.quantity,
       cancelled = CASE WHEN EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = l.order_id
                                     AND e.seller_id = l.seller_id AND e.kind = 'fulfilled')
                        THEN 0 ELSE l.quantity END,
       shipped = CASE WHEN EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = l.order_id
                                   AND e.seller_id = l.seller_id AND e.kind = 'fulfilled')
                      THEN l.quantity ELSE 0 END
FROM order_parts p
WHERE p.order_id = l.order_id AND p.seller_id = l.seller_id AND p.status = 'refunded';
UPDATE order_lines l SET shipped = l.quantity
FROM order_parts p
WHERE p.order_id = l.order_id AND p.seller_id = l.seller_id AND p.status = 'fulfilled';
ALTER TABLE order_lines ADD CONSTRAINT order_lines_units CHECK (
    shipped >= 0 AND cancelled >= 0 AND returned >= 0
    AND shipped + cancelled <= quantity
    AND refunded >= cancelled + returned AND refunded - cancelled <= shipped
    AND returned <= shipped);

-- A shipment: some units of one seller's part, with the carrier's tracking.
CREATE TABLE fulfillments (
    id              uuid        PRIMARY KEY,
    order_id        uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seller_id       uuid        NOT NULL REFERENCES sellers (id),
    -- Absent for a shipment recorded without tracking (the `/fulfill` route of earlier releases).
    carrier         text        CHECK (char_length(carrier) BETWEEN 1 AND 100),
    tracking_number text        CHECK (char_length(tracking_number) BETWEEN 1 AND 100),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fulfillments_order ON fulfillments (order_id, created_at);
CREATE TABLE fulfillment_lines (
    fulfillment_id  uuid    NOT NULL REFERENCES fulfillments (id) ON DELETE CASCADE,
    order_id        uuid    NOT NULL,
    line_no         integer NOT NULL,
    quantity        integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (fulfillment_id, line_no),
    FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no) ON DELETE CASCADE
);

-- Money given back. `id` is the reference the gateway deduplicates by: derived from the
-- seller's Idempotency-Key when there is one, so a retry after a lost answer refunds once.
CREATE TABLE refunds (
    id              uuid        PRIMARY KEY,
    order_id        uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- The part it came out of; NULL when the shopper cancelled the whole order.
    seller_id       uuid        REFERENCES sellers (id),
    kind            text        NOT NULL CHECK (kind IN ('cancellation', 'lines', 'amount', 'return')),
    amount          numeric     NOT NULL CHECK (amount >= 0),
    -- The order's shipping, given back with the refund that left no unit unrefunded.
    shipping        numeric     NOT NULL DEFAULT 0 CHECK (shipping >= 0),
    -- Voided before capture instead of paid back.
    voided          boolean     NOT NULL DEFAULT false,
    idempotency_key text,
    request         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_order ON refunds (order_id, created_at);
CREATE TABLE refund_lines (
    refund_id   uuid    NOT NULL REFERENCES refunds (id) ON DELETE CASCADE,
    order_id    uuid    NOT NULL,
    line_no     integer NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    amount      numeric NOT NULL,
    PRIMARY KEY (refund_id, line_no),
    FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no) ON DELETE CASCADE
);

-- A shopper's request to send units back, decided and received by the seller.
CREATE TABLE returns (
    id          uuid        PRIMARY KEY,
    order_id    uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seller_id   uuid        NOT NULL REFERENCES sellers (id),
    status      text        NOT NULL CHECK (status IN ('requested', 'approved', 'rejected', 'received')),
    restocked   boolean,
    refund_id   uuid        REFERENCES refunds (id),
    note        text        CHECK (char_length(note) <= 1000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX returns_order ON returns (order_id, created_at);
CREATE INDEX returns_seller_open ON returns (seller_id, created_at)
    WHERE status IN ('requested', 'approved');
CREATE TABLE return_lines (
    return_id   uuid    NOT NULL REFERENCES returns (id) ON DELETE CASCADE,
    order_id    uuid    NOT NULL,
    line_no     integer NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    reason      text    NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    PRIMARY KEY (return_id, line_no),
    FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no) ON DELETE CASCADE
);

-- The sandbox gateway's refunds, one per reference (its own books, like its payments).
CREATE TABLE sandbox_gateway_refunds (
    reference         uuid        PRIMARY KEY,
    authorization_id  text        NOT NULL,
    amount            numeric     NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
