-- The ledger learns two things (issue "No silent lapse"):
-- * the state 'ambiguous': an unknown outcome after which activeUntil moved, but not by what
--   the attempt expected. Not booked as spend, never followed by a blind new attempt.
-- * retry_at_ms: the earliest next attempt a refusal asked for (429 Retry-After), when it said.
ALTER TABLE ledger DROP CONSTRAINT ledger_state_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_state_check
    CHECK (state IN ('sending', 'succeeded', 'refused', 'unknown', 'failed', 'ambiguous'));
ALTER TABLE ledger ADD COLUMN retry_at_ms BIGINT;
