-- Recognition quality: a passage's number is the weighed consensus of its
-- reads, and every change of it is kept.
--
-- passages.votes: the weight of each number its reads carried, as a JSON
-- object {"MSCU123456": 4.5, ...}, so a new read can move the consensus
-- without rereading every sighting.
-- passages.corrections: the history of the number, a JSON array of
-- {from, to, rule, at, by}, oldest first.
-- sightings.corrected_from / rule: a read whose own text was corrected
-- (a look-alike character, or the one candidate the check digit allows)
-- keeps the text it was corrected from; raw keeps the whole read.
ALTER TABLE passages ADD COLUMN votes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE passages ADD COLUMN corrections TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sightings ADD COLUMN corrected_from TEXT;
ALTER TABLE sightings ADD COLUMN rule TEXT;

-- Near-miss candidates: passages whose number no read has verified yet,
-- which a valid read may fold into and correct. Small, since most
-- passages pass their check digit.
CREATE INDEX passages_unverified ON passages (last_seen_at) WHERE check_digit_ok = 0;

-- Reads whose text has the shape of a container number (10 or 11 letters
-- and digits) but cannot be made into one. They are kept, never refused,
-- and wait in the exceptions queue until an operator resolves them into a
-- sighting. `client_id` and `content_digest` make a retried POST
-- idempotent, as for sightings.
CREATE TABLE unresolved_reads (
    id                  TEXT    PRIMARY KEY NOT NULL,
    site_id             TEXT    NOT NULL,
    client_id           TEXT,
    content_digest      TEXT    NOT NULL,
    text                TEXT    NOT NULL,
    captured_at         INTEGER NOT NULL,
    received_at         INTEGER NOT NULL,
    flags               INTEGER NOT NULL DEFAULT 0,
    camera_id           TEXT,
    source_video        TEXT,
    cropped_image_ref   TEXT,
    confidence          REAL,
    raw                 TEXT    NOT NULL,
    -- Set when an operator resolves the read.
    resolved_at         INTEGER,
    resolved_by         TEXT,
    resolved_container  TEXT,
    resolved_passage_id TEXT
) STRICT;

CREATE UNIQUE INDEX unresolved_by_client_id ON unresolved_reads (client_id) WHERE client_id IS NOT NULL;
-- The open queue, in capture order.
CREATE INDEX unresolved_open ON unresolved_reads (captured_at, id) WHERE resolved_at IS NULL;
