-- gatelog central schema: per-site hourly counts for the statistics.
--
-- `GET /api/v1/stats` on the head-office view counts passages per site per
-- hour or day. Counted from `container_logs` itself, a month of 20 sites
-- is about a million rows to read per request, and the cost grows with the
-- rows. `container_logs_hourly` keeps the counts per site and UTC hour, so
-- the same request reads 24 rows per site and day whatever the volume:
--   passages    rows whose `captured_at` falls in the hour
--   sightings   the sum of their `seen_count`
--   duplicates  the sum of `seen_count - 1`
--   flagged     the rows with any flag
-- A day bucket (UTC midnight to midnight) is the sum of its 24 hours, so
-- both buckets of the API come from this table exactly.
--
-- Kept exact by statement-level triggers on `container_logs` with
-- transition tables: one per INSERT, UPDATE and DELETE statement, each
-- adding what the statement's rows bring and taking away what they held,
-- grouped per site and hour, so a sync batch of 500 rows costs one small
-- upsert, not 500. Rows that move to another `captured_at`
-- (`container_logs_move_passage` deletes the stored row through the
-- parent) are taken from their old hour by the DELETE trigger. The
-- triggers fire only for the live table: during an in-place upgrade
-- `container_logs_next` carries them too (so it keeps them when the swap
-- renames it), but its copies of rows are not counted twice.
--
-- Not seen by the triggers: `TRUNCATE` and dropping a partition. `gatelog
-- central archive` recounts the month it drops in the same transaction;
-- after any other bulk change outside the triggers (a load with
-- `session_replication_role = replica`, say), run
--   SELECT public.container_logs_hourly_rebuild(NULL, NULL);
-- which recounts a time range (or everything) from the table, holding
-- writers back while it reads (SHARE lock).
--
-- Idempotent, like every central migration: the table is counted from
-- `container_logs` when this file creates it, in the same transaction as
-- its triggers, and left to the triggers when the file runs again.

-- The UTC hour holding `t`, whatever the session's time zone.
CREATE OR REPLACE FUNCTION public.container_logs_hour(t TIMESTAMPTZ)
RETURNS TIMESTAMPTZ
LANGUAGE sql
IMMUTABLE
SET search_path = ''
AS $$
    SELECT pg_catalog.date_bin('1 hour'::interval, t, '2000-01-01 00:00:00+00'::timestamptz);
$$;

CREATE OR REPLACE FUNCTION public.container_logs_hourly_apply()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_RELID IS DISTINCT FROM pg_catalog.to_regclass('public.container_logs') THEN
        RETURN NULL;
    END IF;
    -- Sorted by key, so concurrent statements lock the counters in one
    -- order and cannot deadlock on them.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.container_logs_hourly AS h
        SELECT site_id, public.container_logs_hour(captured_at), count(*), sum(seen_count),
               sum(seen_count - 1), count(*) FILTER (WHERE flags <> 0)
        FROM new_rows GROUP BY 1, 2 ORDER BY 2, 1
        ON CONFLICT (hour, site_id) DO UPDATE SET
            passages = h.passages + excluded.passages,
            sightings = h.sightings + excluded.sightings,
            duplicates = h.duplicates + excluded.duplicates,
            flagged = h.flagged + excluded.flagged;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO public.container_logs_hourly AS h
        SELECT site_id, hour, sum(n), sum(s), sum(d), sum(f)
        FROM (SELECT site_id, public.container_logs_hour(captured_at) AS hour, 1 AS n,
                     seen_count AS s, seen_count - 1 AS d, (flags <> 0)::int AS f
              FROM new_rows
              UNION ALL
              SELECT site_id, public.container_logs_hour(captured_at), -1,
                     -seen_count, -(seen_count - 1), -((flags <> 0)::int)
              FROM old_rows) c
        GROUP BY 1, 2 ORDER BY 2, 1
        ON CONFLICT (hour, site_id) DO UPDATE SET
            passages = h.passages + excluded.passages,
            sightings = h.sightings + excluded.sightings,
            duplicates = h.duplicates + excluded.duplicates,
            flagged = h.flagged + excluded.flagged;
    ELSE
        INSERT INTO public.container_logs_hourly AS h
        SELECT site_id, public.container_logs_hour(captured_at), -count(*), -sum(seen_count),
               -sum(seen_count - 1), -(count(*) FILTER (WHERE flags <> 0))
        FROM old_rows GROUP BY 1, 2 ORDER BY 2, 1
        ON CONFLICT (hour, site_id) DO UPDATE SET
            passages = h.passages + excluded.passages,
            sightings = h.sightings + excluded.sightings,
            duplicates = h.duplicates + excluded.duplicates,
            flagged = h.flagged + excluded.flagged;
    END IF;
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION public.container_logs_hourly_apply() FROM PUBLIC, anon, authenticated;

-- Recounts the hours in [from_t, to_t) (NULL: unbounded) from the table.
-- Writers wait while it reads, so no change is missed or counted twice.
CREATE OR REPLACE FUNCTION public.container_logs_hourly_rebuild(from_t TIMESTAMPTZ, to_t TIMESTAMPTZ)
RETURNS BIGINT
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    lo TIMESTAMPTZ := COALESCE(public.container_logs_hour(from_t), '-infinity');
    hi TIMESTAMPTZ := COALESCE(to_t, 'infinity');
    n BIGINT;
BEGIN
    LOCK TABLE public.container_logs IN SHARE MODE;
    DELETE FROM public.container_logs_hourly WHERE hour >= lo AND hour < hi;
    INSERT INTO public.container_logs_hourly
    SELECT site_id, public.container_logs_hour(captured_at), count(*), sum(seen_count),
           sum(seen_count - 1), count(*) FILTER (WHERE flags <> 0)
    FROM public.container_logs
    WHERE captured_at >= lo AND captured_at < hi
    GROUP BY 1, 2;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION public.container_logs_hourly_rebuild(TIMESTAMPTZ, TIMESTAMPTZ)
    FROM PUBLIC, anon, authenticated;

-- The table, its triggers and its first count, in one transaction: no
-- change can slip between the count and the triggers.
DO $$
DECLARE
    created BOOLEAN := pg_catalog.to_regclass('public.container_logs_hourly') IS NULL;
    t TEXT;
BEGIN
    CREATE TABLE IF NOT EXISTS public.container_logs_hourly (
        site_id    TEXT        NOT NULL,
        hour       TIMESTAMPTZ NOT NULL,
        passages   BIGINT      NOT NULL,
        sightings  BIGINT      NOT NULL,
        duplicates BIGINT      NOT NULL,
        flagged    BIGINT      NOT NULL,
        PRIMARY KEY (hour, site_id)
    );
    -- Derived data, written only by the functions above: readable by the
    -- same roles as the passages, writable by none.
    ALTER TABLE public.container_logs_hourly ENABLE ROW LEVEL SECURITY;
    REVOKE ALL ON public.container_logs_hourly FROM PUBLIC, anon, authenticated, service_role;
    GRANT SELECT ON public.container_logs_hourly TO authenticated, service_role;
    DROP POLICY IF EXISTS container_logs_hourly_read ON public.container_logs_hourly;
    CREATE POLICY container_logs_hourly_read ON public.container_logs_hourly
        FOR SELECT TO authenticated, service_role USING (true);
    FOREACH t IN ARRAY ARRAY['container_logs', 'container_logs_next'] LOOP
        IF pg_catalog.to_regclass('public.' || t) IS NOT NULL THEN
            EXECUTE format(
                'CREATE OR REPLACE TRIGGER container_logs_hourly_insert
                     AFTER INSERT ON public.%I REFERENCING NEW TABLE AS new_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION public.container_logs_hourly_apply()', t);
            EXECUTE format(
                'CREATE OR REPLACE TRIGGER container_logs_hourly_update
                     AFTER UPDATE ON public.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION public.container_logs_hourly_apply()', t);
            EXECUTE format(
                'CREATE OR REPLACE TRIGGER container_logs_hourly_delete
                     AFTER DELETE ON public.%I REFERENCING OLD TABLE AS old_rows
                     FOR EACH STATEMENT EXECUTE FUNCTION public.container_logs_hourly_apply()', t);
        END IF;
    END LOOP;
    IF created THEN
        PERFORM public.container_logs_hourly_rebuild(NULL, NULL);
    END IF;
END
$$;
