-- proxy-renewd's first schema: rules, the renewal ledger, the alert outbox, and a snapshot of
-- the last-seen non-secret subscription fields. Times are integer ms since the Unix epoch
-- (UTC), money integer cents. No credential or protocol URL is ever stored.

-- One complete renewal rule per subscription; subscriptions without a row use [defaults].
CREATE TABLE rules (
    subscription_id  TEXT PRIMARY KEY NOT NULL
                     CHECK (length(subscription_id) BETWEEN 1 AND 64 AND subscription_id NOT GLOB '*[^a-z0-9]*'),
    enabled          INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    renew_before_ms  INTEGER NOT NULL CHECK (renew_before_ms >= 0),
    plan             TEXT NOT NULL,               -- cheapest | best-value | longest | a plan id
    repeat_count     INTEGER NOT NULL CHECK (repeat_count >= 1),
    max_price_cents  INTEGER CHECK (max_price_cents IS NULL OR max_price_cents >= 0),
    coupon_code      TEXT,
    note             TEXT,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL
) STRICT;

-- Every renewal attempt. A row is committed (state 'sending') before the request is sent:
-- no row, no request. The UNIQUE period key lets exactly one process send each attempt.
CREATE TABLE ledger (
    id                      INTEGER PRIMARY KEY,
    subscription_id         TEXT NOT NULL,
    active_until_before_ms  INTEGER NOT NULL,     -- the period: activeUntil seen when deciding
    attempt                 INTEGER NOT NULL CHECK (attempt >= 1),
    plan_id                 TEXT NOT NULL,
    repeat_count            INTEGER NOT NULL CHECK (repeat_count >= 1),
    price_cents             INTEGER NOT NULL CHECK (price_cents >= 0),
    coupon_code             TEXT,
    expected_end_at_ms      INTEGER NOT NULL,
    actual_end_at_ms        INTEGER,
    state                   TEXT NOT NULL CHECK (state IN ('sending', 'succeeded', 'refused', 'unknown', 'failed')),
    http_status             INTEGER,
    error                   TEXT,
    origin                  TEXT NOT NULL CHECK (origin IN ('daemon', 'manual')),
    created_at_ms           INTEGER NOT NULL,
    updated_at_ms           INTEGER NOT NULL,
    UNIQUE (subscription_id, active_until_before_ms, attempt)
) STRICT;
CREATE INDEX ledger_by_subscription ON ledger (subscription_id, created_at_ms);
CREATE INDEX ledger_by_time ON ledger (created_at_ms);
CREATE INDEX ledger_open ON ledger (state) WHERE state IN ('sending', 'unknown');

-- Alerts, written in the same transaction as the event that caused them, then sent.
CREATE TABLE outbox (
    id                  INTEGER PRIMARY KEY,
    kind                TEXT NOT NULL,
    subscription_id     TEXT,
    period_ms           INTEGER,                  -- active_until of the period it is about
    payload             TEXT NOT NULL,            -- secret-free JSON for the email
    created_at_ms       INTEGER NOT NULL,
    sent_at_ms          INTEGER,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms  INTEGER NOT NULL,
    last_error          TEXT
) STRICT;
CREATE INDEX outbox_pending ON outbox (next_attempt_at_ms) WHERE sent_at_ms IS NULL;
CREATE INDEX outbox_dedup ON outbox (kind, subscription_id, period_ms, created_at_ms);

-- The last-seen non-secret fields of each subscription, for reports and for noticing one
-- that disappeared.
CREATE TABLE subscriptions (
    subscription_id  TEXT PRIMARY KEY NOT NULL,
    status           TEXT NOT NULL,
    active_until_ms  INTEGER NOT NULL,
    label            TEXT,
    network_label    TEXT,
    user_note        TEXT,
    first_seen_ms    INTEGER NOT NULL,
    last_seen_ms     INTEGER NOT NULL,
    gone_since_ms    INTEGER                      -- set when a poll no longer lists it
) STRICT;
