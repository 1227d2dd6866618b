-- The ledger learns two things (issue "No silent lapse"):
-- * the state 'ambiguous': an unknown outcome after which activeUntil moved, but not by what
--   the attempt expected. Not booked as spend, never followed by a blind new attempt: the
--   subscription is held for a person.
-- * retry_at_ms: the earliest next attempt a refusal asked for (429 Retry-After), when it said.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt, every row kept.
CREATE TABLE ledger_new (
    id                      INTEGER PRIMARY KEY,
    subscription_id         TEXT NOT NULL,
    active_until_before_ms  INTEGER NOT NULL,
    attempt                 INTEGER NOT NULL CHECK (attempt >= 1),
    plan_id                 TEXT NOT NULL,
    repeat_count            INTEGER NOT NULL CHECK (repeat_count >= 1),
    price_cents             INTEGER NOT NULL CHECK (price_cents >= 0),
    coupon_code             TEXT,
    expected_end_at_ms      INTEGER NOT NULL,
    actual_end_at_ms        INTEGER,
    state                   TEXT NOT NULL
                            CHECK (state IN ('sending', 'succeeded', 'refused', 'unknown', 'failed', 'ambiguous')),
    http_status             INTEGER,
    error                   TEXT,
    origin                  TEXT NOT NULL CHECK (origin IN ('daemon', 'manual')),
    created_at_ms           INTEGER NOT NULL,
    updated_at_ms           INTEGER NOT NULL,
    retry_at_ms             INTEGER,
    UNIQUE (subscription_id, active_until_before_ms, attempt)
) STRICT;
INSERT INTO ledger_new (id, subscription_id, active_until_before_ms, attempt, plan_id, repeat_count, price_cents,
                        coupon_code, expected_end_at_ms, actual_end_at_ms, state, http_status, error, origin,
                        created_at_ms, updated_at_ms)
    SELECT id, subscription_id, active_until_before_ms, attempt, plan_id, repeat_count, price_cents,
           coupon_code, expected_end_at_ms, actual_end_at_ms, state, http_status, error, origin,
           created_at_ms, updated_at_ms
    FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_by_subscription ON ledger (subscription_id, created_at_ms);
CREATE INDEX ledger_by_time ON ledger (created_at_ms);
CREATE INDEX ledger_open ON ledger (state) WHERE state IN ('sending', 'unknown');
