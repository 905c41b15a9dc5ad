-- Mail and the shopper's account (#19).
--
-- The outbox: every message is written in the transaction of the change that causes it (an
-- order paid, a password reset asked for), so a message exists if and only if that change
-- committed. Each process's sender claims due rows with FOR UPDATE SKIP LOCKED, sends them over
-- SMTP and marks them sent, or schedules a retry with backoff; after `mail.max_attempts` a
-- message stays `failed_at` (never dropped, counted). Delivery is at least once: a crash
-- between the SMTP server's acceptance and the mark re-sends that one message.
CREATE TABLE mail_outbox (
    id               uuid        PRIMARY KEY,
    recipient        text        NOT NULL CHECK (char_length(recipient) BETWEEN 3 AND 254),
    -- The language the message was written in (en, de, fr, ja).
    locale           text        NOT NULL,
    -- What it is about: order_confirmed, order_shipped, order_cancelled, order_refunded,
    -- password_reset.
    kind             text        NOT NULL,
    subject          text        NOT NULL,
    body             text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Sends tried so far (counted when a sender claims the message).
    attempts         integer     NOT NULL DEFAULT 0,
    -- Due from then on; a claim moves it past the send's deadline (a lease), a failure to the
    -- retry's time.
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    -- Given up after `mail.max_attempts`: kept, counted, never retried by itself.
    failed_at        timestamptz,
    last_error       text
);
-- What is due: the senders' claim walks this index in order of due time.
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
-- Mail not sent yet (queued or failed), for the gauges of what waits and since when.
CREATE INDEX mail_outbox_unsent ON mail_outbox (created_at) WHERE sent_at IS NULL;
-- Sent mail, for the upkeep that deletes it after `mail.keep_sent_days`.
CREATE INDEX mail_outbox_sent ON mail_outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX mail_outbox_recipient ON mail_outbox (lower(recipient));

-- What mail written in SQL needs of the settings: the store's default locale (for shoppers
-- without one) and the address people reach the store at (for links). One row, written by
-- every process at start from its settings (as the exchange rates are).
CREATE TABLE mail_defaults (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    locale      text        NOT NULL,
    public_url  text        NOT NULL
);

-- Password resets: single-use tokens, stored as SHA-256 digests like session tokens, valid
-- for `auth.password_reset_ttl_mins`. Using one (or changing the password) uses them all.
CREATE TABLE password_resets (
    token_hash  bytea       PRIMARY KEY,
    shopper_id  uuid        NOT NULL REFERENCES shoppers (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX password_resets_shopper ON password_resets (shopper_id) WHERE used_at IS NULL;

-- A deleted account: its personal data erased at once (email, name, password, sessions, carts,
-- addresses), the row kept because orders reference it. Its orders keep their contact and
-- address for the books until `accounts.order_retention_days`, then the upkeep erases those.
ALTER TABLE shoppers ADD COLUMN deleted_at timestamptz;
CREATE INDEX shoppers_deleted ON shoppers (id) WHERE deleted_at IS NOT NULL;
