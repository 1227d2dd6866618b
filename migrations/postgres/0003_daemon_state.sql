-- Facts about the daemon itself, one row per key; `last_cycle_ms` is when the last real cycle
-- finished (read by `proxy-renewd health` and the container's HEALTHCHECK).
CREATE TABLE daemon_state (
    key    TEXT PRIMARY KEY NOT NULL,
    value  BIGINT NOT NULL
);
