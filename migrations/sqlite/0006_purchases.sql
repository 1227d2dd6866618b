-- The purchases ledger (issue "The rest of the provider's API"): `op=purchase` has no
-- idempotency key and no activeUntil to compare, so a row is committed (state 'sending')
-- before the POST, as for renewals: no row, no request. The evidence of a purchase is the new
-- subscription ids; one whose answer was lost stays 'unknown' until a person settles it with
-- `proxy-renewd purchase reconcile`, and it is never retried automatically.
CREATE TABLE purchases (
    id                    INTEGER PRIMARY KEY,
    plan_id               TEXT NOT NULL,
    quantity              INTEGER NOT NULL CHECK (quantity >= 1),
    repeat_count          INTEGER NOT NULL CHECK (repeat_count >= 1),
    coupon_code           TEXT,
    price_cents           INTEGER NOT NULL CHECK (price_cents >= 0),  -- the total shown: unit price × repeat count × quantity
    duration_ms           INTEGER NOT NULL CHECK (duration_ms >= 0),  -- what each new subscription gets: plan duration × repeat count
    state                 TEXT NOT NULL CHECK (state IN ('sending', 'done', 'refused', 'unknown', 'not-applied')),
    subscription_ids      TEXT NOT NULL DEFAULT '[]',                  -- JSON array of the new ids, once known
    known_before          TEXT NOT NULL,                               -- JSON array: every id listed just before the POST
    rule_enabled          INTEGER CHECK (rule_enabled IS NULL OR rule_enabled IN (0, 1)),  -- rule overrides for the new ids,
    rule_renew_before_ms  INTEGER CHECK (rule_renew_before_ms IS NULL OR rule_renew_before_ms >= 0),  -- on top of [defaults];
    rule_plan             TEXT,                                        -- all NULL: they follow [defaults]
    http_status           INTEGER,
    error                 TEXT,
    created_at_ms         INTEGER NOT NULL,
    updated_at_ms         INTEGER NOT NULL
) STRICT;
CREATE INDEX purchases_by_time ON purchases (created_at_ms);
CREATE INDEX purchases_open ON purchases (state) WHERE state IN ('sending', 'unknown');
