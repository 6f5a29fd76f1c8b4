-- Read counts per hour or day (GET /api/v1/stats) scan sightings by capture
-- time. The index covers the columns the counts need, so the scan never
-- touches the table.
CREATE INDEX sightings_by_time ON sightings (captured_at, outcome, flags);
