-- Who an order goes to and how to reach them, as they were at checkout (#19). The cart keeps
-- the destination and, for guests, the contact email until checkout copies them to the order;
-- the order's copy never changes when the shopper edits their address book later.
ALTER TABLE carts
    ADD COLUMN contact_email text CHECK (char_length(contact_email) BETWEEN 3 AND 254);
ALTER TABLE orders
    ADD COLUMN shipping_address jsonb,
    ADD COLUMN contact_email    text;
-- A shopper's name and preferred currency, set from their account (PATCH /api/v1/shoppers/me).
ALTER TABLE shoppers
    ADD COLUMN name     text CHECK (char_length(name) BETWEEN 1 AND 200),
    ADD COLUMN currency char(3);
