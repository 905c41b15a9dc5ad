-- Personalization: item-to-item similarities learned incrementally from paid orders, and, as
-- weaker signals, from cart additions and product views of signed-in shoppers.
--
-- The recommender reads the order event log (`paid` events of whole orders) and the signal
-- log below in commit order from its cursors, weighs each order's products and every pair of
-- them (an order weighs 1, a cart addition or a view less, paired with what the same shopper
-- carted or viewed in the hour before), and recomputes the neighbour lists of the products it
-- touched: cosine similarity (together / sqrt(weight(a) * weight(b))), the top few per
-- product. Cursors move in the same transaction as the weights, so every event counts once.
CREATE TABLE reco_item_counts (
    product_id  uuid    PRIMARY KEY,
    weight      real    NOT NULL
);
CREATE INDEX reco_popular ON reco_item_counts (weight DESC, product_id);

-- Popularity per region: the fallback for shoppers without a history.
CREATE TABLE reco_region_counts (
    region      text    NOT NULL,
    product_id  uuid    NOT NULL,
    orders      integer NOT NULL,
    PRIMARY KEY (region, product_id)
);
CREATE INDEX reco_region_popular ON reco_region_counts (region, orders DESC, product_id);

-- Weight of the orders (and signals) that have both products; stored in both directions.
CREATE TABLE reco_pairs (
    product_id  uuid    NOT NULL,
    other_id    uuid    NOT NULL,
    together    real    NOT NULL,
    PRIMARY KEY (product_id, other_id)
);

-- The top neighbours of each product, by similarity.
CREATE TABLE reco_neighbours (
    product_id    uuid NOT NULL,
    neighbour_id  uuid NOT NULL,
    score         real NOT NULL,
    PRIMARY KEY (product_id, neighbour_id)
);
CREATE INDEX reco_neighbours_ranked ON reco_neighbours (product_id, score DESC);

-- How far the recommender has read the order event log: (xid, id) of the last event counted.
CREATE TABLE reco_progress (
    name      text   PRIMARY KEY,
    xid       xid8   NOT NULL,
    event_id  bigint NOT NULL
);
INSERT INTO reco_progress (name, xid, event_id) VALUES ('orders', '0', 0), ('signals', '0', 0);

-- Weaker signals: a signed-in shopper added a product to a cart, or viewed it. Appended by
-- the request, read once by the recommender, deleted a day later.
CREATE TABLE reco_signals (
    id          bigserial   PRIMARY KEY,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    shopper_id  uuid        NOT NULL,
    product_id  uuid        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('cart', 'view')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reco_signals_feed ON reco_signals (xid, id);
CREATE INDEX reco_signals_shopper ON reco_signals (shopper_id, created_at);

-- The recommender's read of the log: paid events of whole orders, in commit order.
CREATE INDEX order_events_paid_feed ON order_events (xid, id)
    WHERE kind = 'paid' AND seller_id IS NULL;
