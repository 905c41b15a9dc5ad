-- A cart's version: every change to the cart or its lines raises it, so a process that keeps a
-- cart in memory (its live cart actor) writes a change only over the version it read, and
-- learns from a refused write that another process changed the cart meanwhile.
ALTER TABLE carts ADD COLUMN version bigint NOT NULL DEFAULT 0;
-- The last line change written over a version (its id), so a commit-group batch run again
-- after a commit whose answer was lost finds its own write done instead of someone else's.
ALTER TABLE carts ADD COLUMN last_write uuid;
