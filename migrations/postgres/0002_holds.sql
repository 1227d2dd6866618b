-- Subscriptions on hold (daemon.md, ledger rule 8): a renewal succeeded but left the
-- subscription still due, so no further automatic renewal is made until a person acts
-- (`rules set ID --enable` or a manual `renew`). Catch-up spending is a human decision.
CREATE TABLE holds (
    subscription_id  TEXT PRIMARY KEY NOT NULL,
    since_ms         BIGINT NOT NULL,
    active_until_ms  BIGINT NOT NULL,    -- the expiry the renewal left it with
    ledger_id        BIGINT,             -- the renewal that caused the hold
    reason           TEXT NOT NULL
);
