-- Gate operations: the direction and lane of a passage's camera, the truck
-- and the box, and the yard.
ALTER TABLE passages ADD COLUMN direction TEXT NOT NULL DEFAULT 'none'
    CHECK (direction IN ('in', 'out', 'none'));
ALTER TABLE passages ADD COLUMN lane TEXT;
ALTER TABLE passages ADD COLUMN truck_plate TEXT;
ALTER TABLE passages ADD COLUMN iso_type TEXT;
-- On a gate-out: seconds since the container's gate-in.
ALTER TABLE passages ADD COLUMN dwell_secs INTEGER;

-- Two boxes on one truck, found by its plate.
CREATE INDEX passages_by_plate ON passages (truck_plate, captured_at) WHERE truck_plate IS NOT NULL;
-- Gate-ins and gate-outs per bucket.
CREATE INDEX passages_by_direction ON passages (direction, captured_at) WHERE direction <> 'none';

-- The yard now: one row per container whose latest movement is a gate-in,
-- kept by the writer as movements commit, so listing the yard never scans
-- history. The row goes with its passage (retention keeps passages that
-- are in the yard).
CREATE TABLE yard (
    -- Deferred: the writer decides the yard before it writes the passages
    -- of the same transaction.
    passage_id       TEXT    PRIMARY KEY NOT NULL
        REFERENCES passages (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    container_owner  TEXT    NOT NULL,
    container_number TEXT    NOT NULL,
    gate_in_at       INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX yard_by_container ON yard (container_owner, container_number);
-- Longest stays first, with keyset paging.
CREATE INDEX yard_by_time ON yard (gate_in_at, passage_id);
CREATE INDEX yard_by_owner ON yard (container_owner, gate_in_at, passage_id);

-- A queued read keeps its camera's direction and lane, its plate and its
-- size-type code, for the sighting an operator makes of it.
ALTER TABLE unresolved_reads ADD COLUMN direction TEXT NOT NULL DEFAULT 'none'
    CHECK (direction IN ('in', 'out', 'none'));
ALTER TABLE unresolved_reads ADD COLUMN lane TEXT;
ALTER TABLE unresolved_reads ADD COLUMN truck_plate TEXT;
ALTER TABLE unresolved_reads ADD COLUMN iso_type TEXT;
