-- Each alert recipient's delivery state (issue "Alerts that always reach someone"): a digest
-- is sent to each recipient on its own; an address the server refuses for good (5xx) a few
-- times is dead-lettered, and the others are told in every digest until the configuration
-- changes.
CREATE TABLE recipients (
    address         TEXT PRIMARY KEY NOT NULL,
    failures        BIGINT NOT NULL DEFAULT 0,    -- permanent refusals in a row
    dead_since_ms   BIGINT,                       -- set once refused for good
    last_error      TEXT
);

-- Which recipients already have each alert (a JSON array of addresses).
ALTER TABLE outbox ADD COLUMN delivered_to TEXT NOT NULL DEFAULT '[]';
