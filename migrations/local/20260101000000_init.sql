-- gatelog local store, SQLite.
--
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC), so they
-- compare and index exactly. Ids are UUIDs in their hyphenated text form.

-- One container going through the gate: the seed's container_logs row.
CREATE TABLE passages (
    id                TEXT    PRIMARY KEY NOT NULL,
    site_id           TEXT    NOT NULL,
    -- The normalised number, with the check digit when one is known.
    container         TEXT    NOT NULL,
    container_owner   TEXT    NOT NULL,
    container_number  TEXT    NOT NULL,
    check_digit       INTEGER,
    check_digit_ok    INTEGER NOT NULL CHECK (check_digit_ok IN (0, 1)),
    flags             INTEGER NOT NULL DEFAULT 0,
    captured_at       INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    seen_count        INTEGER NOT NULL CHECK (seen_count >= 1),
    camera_id         TEXT,
    source_video      TEXT,
    cropped_image_ref TEXT,
    confidence        REAL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    -- Bumped by every change; sync confirms versions, not rows.
    version           INTEGER NOT NULL DEFAULT 1,
    synced_version    INTEGER NOT NULL DEFAULT 0,
    -- Set when the sync target refused this version for good.
    dead_letter_version INTEGER,
    dead_letter_reason  TEXT,
    CHECK (last_seen_at >= captured_at)
) STRICT;

-- Dedup lookups (key plus span) and the owner / owner+serial filters.
CREATE INDEX passages_by_key ON passages (container_owner, container_number, site_id, last_seen_at);
-- The default listing, newest first, and keyset paging on (captured_at, id).
CREATE INDEX passages_by_time ON passages (captured_at DESC, id DESC);
-- Listings filtered by owner or by serial, already in time order.
CREATE INDEX passages_by_owner ON passages (container_owner, captured_at, id);
CREATE INDEX passages_by_number ON passages (container_number, captured_at, id);
-- Prefix search of the full number.
CREATE INDEX passages_by_container ON passages (container, captured_at);
CREATE INDEX passages_by_camera ON passages (camera_id, captured_at);
-- The sync backlog, oldest change first; small because synced rows leave it.
CREATE INDEX passages_pending ON passages (updated_at) WHERE version > synced_version;

-- Every accepted read, attached to one passage, with its raw input.
CREATE TABLE sightings (
    id                TEXT    PRIMARY KEY NOT NULL,
    passage_id        TEXT    NOT NULL REFERENCES passages (id) ON DELETE CASCADE,
    captured_at       INTEGER NOT NULL,
    received_at       INTEGER NOT NULL,
    container         TEXT    NOT NULL,
    check_digit_ok    INTEGER NOT NULL CHECK (check_digit_ok IN (0, 1)),
    flags             INTEGER NOT NULL DEFAULT 0,
    camera_id         TEXT,
    source_video      TEXT,
    cropped_image_ref TEXT,
    confidence        REAL,
    -- Whether this read opened its passage or joined it; a retried POST
    -- with the same id answers with the original outcome.
    outcome           TEXT    NOT NULL CHECK (outcome IN ('created', 'joined')),
    raw               TEXT    NOT NULL
) STRICT;

CREATE INDEX sightings_by_passage ON sightings (passage_id, captured_at);
