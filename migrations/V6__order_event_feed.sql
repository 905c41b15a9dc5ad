-- The seller feed reads the order event log in commit order, resumable without gaps: events are
-- ordered by the id of the transaction that wrote them, and only transactions older than every
-- one still running are read (their events can no longer be joined by an earlier one).
ALTER TABLE order_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX order_events_seller_feed ON order_events (seller_id, xid, id) WHERE seller_id IS NOT NULL;
