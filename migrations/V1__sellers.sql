-- Sellers: the third parties who list and sell on the marketplace.
-- An API key is shown once at onboarding and kept only as its SHA-256 digest.
CREATE TABLE sellers (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    email         text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    api_key_hash  bytea       NOT NULL UNIQUE,
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One seller account per email address, compared without case.
CREATE UNIQUE INDEX sellers_email_key ON sellers (lower(email));
