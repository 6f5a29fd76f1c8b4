-- One row that the readiness probe (`GET /readyz`) rewrites, so that
-- "ready" means a real durable write just succeeded: a full disk or a
-- read-only file shows as not ready, not only as failing ingest.
CREATE TABLE readiness (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
) STRICT;
