-- Personalization: item-to-item similarities learned from paid orders, incrementally.
--
-- The recommender reads the order event log (`paid` events of whole orders) in commit order
-- from its cursor, counts each order's products and every pair of them, and recomputes the
-- neighbour lists of the products it touched: cosine similarity of their buyer sets
-- (together / sqrt(orders(a) * orders(b))), the top few per product. The cursor moves in the
-- same transaction as the counts, so every order is counted exactly once.
CREATE TABLE reco_item_counts (
    product_id  uuid    PRIMARY KEY,
    orders      integer NOT NULL
);
CREATE INDEX reco_popular ON reco_item_counts (orders DESC, product_id);

-- Popularity per region: the fallback for shoppers without a history.
CREATE TABLE reco_region_counts (
    region      text    NOT NULL,
    product_id  uuid    NOT NULL,
    orders      integer NOT NULL,
    PRIMARY KEY (region, product_id)
);
CREATE INDEX reco_region_popular ON reco_region_counts (region, orders DESC, product_id);

-- Orders containing both products; stored in both directions.
CREATE TABLE reco_pairs (
    product_id  uuid    NOT NULL,
    other_id    uuid    NOT NULL,
    together    integer NOT NULL,
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
INSERT INTO reco_progress (name, xid, event_id) VALUES ('orders', '0', 0);

-- The recommender's read of the log: paid events of whole orders, in commit order.
CREATE INDEX order_events_paid_feed ON order_events (xid, id)
    WHERE kind = 'paid' AND seller_id IS NULL;
