-- Each alert recipient's delivery state (issue "Alerts that always reach someone"): a digest
-- is sent to each recipient on its own, so that one bad address does not block the others; an
-- address the server refuses for good (5xx) a few times is dead-lettered, and the others are
-- told in every digest until the configuration changes.
CREATE TABLE recipients (
    address         TEXT PRIMARY KEY NOT NULL,
    failures        INTEGER NOT NULL DEFAULT 0,   -- permanent refusals in a row
    dead_since_ms   INTEGER,                      -- set once refused for good
    last_error      TEXT
) STRICT;

-- Which recipients already have each alert (a JSON array of addresses): a retry goes only to
-- those still missing it, and the row is sent once every live recipient has it.
ALTER TABLE outbox ADD COLUMN delivered_to TEXT NOT NULL DEFAULT '[]';
