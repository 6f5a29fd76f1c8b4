-- gatelog central schema: container_logs partitioned by month on captured_at.
--
-- Many sites over many years make one table too big to search, vacuum or
-- trim. Partitioned by month on `captured_at` (month bounds in UTC), a
-- query over a time range reads only its months, and an old month leaves
-- as a whole (`gatelog central archive`). The primary key becomes
-- `(id, captured_at)`, because a unique key must contain the partition key;
-- both sync targets upsert on it (REST: `on_conflict=id,captured_at`).
--
-- A passage's `captured_at` is its earliest sighting, so it moves earlier
-- when a late, out-of-order read joins the passage (gatelog_core::fold:
-- `captured_at = min(captured_at, read)`). The central row keeps the
-- site's value, so the head office sees the same time as the site; the
-- row then belongs under another key, possibly in another month. The
-- BEFORE INSERT trigger `container_logs_move_passage` handles that for
-- every writer: an incoming row whose id is stored under another
-- `captured_at` replaces the stored row when it is as new or newer, and is
-- skipped when it is older (a late retry of an earlier state), with the
-- same site guard as an update. It looks for the stored row in the
-- incoming row's month and the months on either side only: each move is
-- bounded by the dedup window (minutes), so that search is exact in
-- practice and touches three partitions, not all of them.
--
-- Upgrading in place. On a table made by the earlier files (v1,
-- unpartitioned), this file prepares `container_logs_next`, partitioned,
-- with a partition for every month that holds rows, and a trigger on the
-- live table that mirrors every change into it. The rows are then copied
-- in batches, each its own transaction (`container_logs_upgrade_step`,
-- which `gatelog migrate --central` calls until it returns 0), and
-- `container_logs_upgrade_finish()` swaps the tables once the copy is
-- checked equal, row for row, under a lock that holds writers back for
-- the duration of the check. Sites keep syncing throughout; readers see
-- the whole table throughout. An interrupted upgrade resumes where its
-- last committed batch ended. An empty table is swapped at once by this
-- file. In Supabase's SQL editor, run this file, then
--   SELECT public.container_logs_upgrade_step(10000);  -- until it returns 0
--   SELECT public.container_logs_upgrade_finish();
--
-- Idempotent, like every central migration.

-- 1. Month partitions.
CREATE OR REPLACE FUNCTION public.container_logs_partition_name(month DATE)
RETURNS TEXT
LANGUAGE sql
IMMUTABLE
SET search_path = ''
AS $$
    SELECT 'container_logs_y' || to_char(month, 'YYYY') || 'm' || to_char(month, 'MM');
$$;

-- Creates the partition of `parent` for the month holding `month`, unless
-- it exists; true when it was created. Rows of that month that waited in
-- the default partition move into it, in the same transaction.
CREATE OR REPLACE FUNCTION public.container_logs_ensure_partition(parent TEXT, month DATE)
RETURNS BOOLEAN
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    month_first DATE := date_trunc('month', month)::date;
    part TEXT := public.container_logs_partition_name(month_first);
    lo TIMESTAMPTZ := month_first::timestamp AT TIME ZONE 'UTC';
    hi TIMESTAMPTZ := (month_first + INTERVAL '1 month')::timestamp AT TIME ZONE 'UTC';
    waiting BOOLEAN;
BEGIN
    -- Serialises callers (a migration and `gatelog central`, say) without
    -- blocking reads or writes of the table.
    EXECUTE format('LOCK TABLE public.%I IN SHARE UPDATE EXCLUSIVE MODE', parent);
    IF to_regclass(format('public.%I', part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'SELECT EXISTS (SELECT 1 FROM public.container_logs_default
                        WHERE captured_at >= %L AND captured_at < %L)', lo, hi)
        INTO waiting;
    IF waiting THEN
        -- A partition cannot be created over rows the default partition
        -- holds for its range: build it aside, move them, then attach it
        -- (the CHECK constraint spares the attach a scan).
        EXECUTE format(
            'CREATE TABLE public.%I (LIKE public.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
            part, parent);
        EXECUTE format(
            'ALTER TABLE public.%I ADD CONSTRAINT %I CHECK (captured_at >= %L AND captured_at < %L)',
            part, part || '_bounds', lo, hi);
        EXECUTE format(
            'WITH moved AS (DELETE FROM public.container_logs_default
                            WHERE captured_at >= %L AND captured_at < %L RETURNING *)
             INSERT INTO public.%I SELECT * FROM moved', lo, hi, part);
        EXECUTE format(
            'ALTER TABLE public.%I ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
            parent, part, lo, hi);
        EXECUTE format('ALTER TABLE public.%I DROP CONSTRAINT %I', part, part || '_bounds');
    ELSE
        EXECUTE format(
            'CREATE TABLE public.%I PARTITION OF public.%I FOR VALUES FROM (%L) TO (%L)',
            part, parent, lo, hi);
    END IF;
    PERFORM public.container_logs_lock_partition(part);
    RETURN true;
END
$$;

-- A partition is reached through its parent, whose GRANTs and policies
-- apply. Read directly, it would bypass them, and Supabase grants every
-- new table in `public` to its API roles by default; so each partition
-- has RLS on with no policy, and no API role may touch it.
CREATE OR REPLACE FUNCTION public.container_logs_lock_partition(part TEXT)
RETURNS VOID
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', part);
    EXECUTE format('REVOKE ALL ON public.%I FROM PUBLIC, anon, authenticated, service_role', part);
END
$$;

-- The indexes for the central queries. `prefix` names them while the
-- table is still `container_logs_next`, so they do not clash with the v1
-- table's; the swap renames them. The full number is the site's
-- `container`: owner code, serial and check digit when known.
CREATE OR REPLACE FUNCTION public.container_logs_ensure_indexes(parent TEXT)
RETURNS VOID
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    prefix TEXT := CASE parent WHEN 'container_logs' THEN 'idx_container_logs'
                               ELSE 'idx_container_logs_next' END;
    ext_schema TEXT;
    trgm_schema TEXT;
BEGIN
    -- The newest first, across sites.
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON public.%I (captured_at DESC)',
                   prefix || '_captured_at', parent);
    -- One site over a time range.
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON public.%I (site_id, captured_at DESC)',
                   prefix || '_site_captured_at', parent);
    -- Owner code, or owner code and serial.
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON public.%I (container_owner, container_number)',
                   prefix || '_owner_number', parent);
    -- What each site synced last, and changes since a time, per site.
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON public.%I (site_id, updated_at DESC)',
                   prefix || '_site_updated_at', parent);
    -- A prefix of the full number (`LIKE 'MSCU12%'`).
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON public.%I
             ((container_owner || container_number || COALESCE(check_digit::text, %L)) text_pattern_ops)',
        prefix || '_number_prefix', parent, '');
    -- A substring of the full number, with pg_trgm when the server has it
    -- (Supabase does, in its `extensions` schema).
    SELECT n.nspname INTO trgm_schema
    FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_namespace n ON n.oid = o.opcnamespace
    WHERE o.opcname = 'gin_trgm_ops' LIMIT 1;
    IF trgm_schema IS NULL THEN
        ext_schema := CASE WHEN to_regnamespace('extensions') IS NOT NULL
                           THEN 'extensions' ELSE 'public' END;
        BEGIN
            EXECUTE format('CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA %I', ext_schema);
            trgm_schema := ext_schema;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pg_trgm is not available (%): substring search of container numbers will scan instead of using an index', SQLERRM;
        END;
    END IF;
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON public.%I USING gin
                 ((container_owner || container_number || COALESCE(check_digit::text, %L)) %I.gin_trgm_ops)',
            prefix || '_number_trgm', parent, '', trgm_schema);
    END IF;
END
$$;

-- Partitions for this month and the next `months_ahead`, made ahead of the
-- rows (`gatelog migrate --central` and `gatelog central` call it); the
-- default partition catches anything else. Returns how many were created.
CREATE OR REPLACE FUNCTION public.container_logs_maintain(months_ahead INTEGER DEFAULT 3)
RETURNS INTEGER
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    this_month DATE := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    created INTEGER := 0;
    i INTEGER;
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class
        WHERE oid = to_regclass('public.container_logs')) IS DISTINCT FROM 'p' THEN
        RETURN 0;
    END IF;
    FOR i IN 0..months_ahead LOOP
        IF public.container_logs_ensure_partition(
               'container_logs', (this_month + make_interval(months => i))::date) THEN
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

-- 2. A passage whose captured_at moved: see the head of this file.
CREATE OR REPLACE FUNCTION public.container_logs_move_passage()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    month_start TIMESTAMP := date_trunc('month', NEW.captured_at AT TIME ZONE 'UTC');
    lo TIMESTAMPTZ := (month_start - INTERVAL '1 month') AT TIME ZONE 'UTC';
    hi TIMESTAMPTZ := (month_start + INTERVAL '2 months') AT TIME ZONE 'UTC';
    stored RECORD;
BEGIN
    SELECT c.site_id, c.version INTO stored
    FROM public.container_logs c
    WHERE c.id = NEW.id AND c.captured_at <> NEW.captured_at
      AND c.captured_at >= lo AND c.captured_at < hi
    ORDER BY c.version DESC
    LIMIT 1
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    IF stored.site_id IS DISTINCT FROM NEW.site_id THEN
        RAISE EXCEPTION 'passage % belongs to site %, not to site %',
                NEW.id, stored.site_id, NEW.site_id
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'Passage ids are per site; this site''s passage is kept locally as a dead letter.';
    END IF;
    IF NEW.version < stored.version THEN
        -- An older state of the passage, arriving late: the stored row is
        -- newer, and stays.
        RETURN NULL;
    END IF;
    DELETE FROM public.container_logs c
    WHERE c.id = NEW.id AND c.captured_at <> NEW.captured_at
      AND c.captured_at >= lo AND c.captured_at < hi;
    RETURN NEW;
END
$$;

-- 3. Retention, as before, deleting by the whole key.
CREATE OR REPLACE FUNCTION public.container_logs_retention(
    keep INTERVAL,
    max_rows INTEGER DEFAULT 10000
)
RETURNS BIGINT
LANGUAGE sql
SET search_path = ''
AS $$
    WITH doomed AS (
        SELECT id, captured_at FROM public.container_logs
        WHERE captured_at < now() - keep
        ORDER BY captured_at
        LIMIT max_rows
    ), gone AS (
        DELETE FROM public.container_logs c USING doomed d
        WHERE c.id = d.id AND c.captured_at = d.captured_at
        RETURNING 1
    )
    SELECT count(*) FROM gone;
$$;

-- 4. The upgrade from v1. The mirror keeps `container_logs_next` equal to
--    the live table for every change made after it was installed; the
--    batches copy what was there before. A batch takes a share lock on the
--    rows it copies, so a change to one of them waits until the batch has
--    committed and is then mirrored over the copy.
CREATE OR REPLACE FUNCTION public.container_logs_mirror()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM public.container_logs_next
        WHERE id = OLD.id AND captured_at = OLD.captured_at;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO public.container_logs_next SELECT NEW.*;
    END IF;
    RETURN NULL;
END
$$;

-- Copies the next `max_rows` rows (in id order) and returns how many it
-- read; 0 when the copy is complete or no upgrade is under way.
CREATE OR REPLACE FUNCTION public.container_logs_upgrade_step(max_rows INTEGER DEFAULT 10000)
RETURNS BIGINT
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    last_id UUID;
    n BIGINT;
    next_id UUID;
BEGIN
    IF to_regclass('public.container_logs_next') IS NULL THEN
        RETURN 0;
    END IF;
    SELECT cursor_id INTO last_id FROM public.container_logs_upgrade FOR UPDATE;
    -- Planned with the cursor's value each time, so that every batch is a
    -- range scan of the primary key.
    EXECUTE format(
        'WITH batch AS (
             SELECT * FROM public.container_logs %s ORDER BY id LIMIT %s FOR SHARE
         ), copied AS (
             INSERT INTO public.container_logs_next SELECT * FROM batch
             ON CONFLICT (id, captured_at) DO NOTHING
         )
         SELECT count(*), (SELECT b.id FROM batch b ORDER BY b.id DESC LIMIT 1) FROM batch',
        CASE WHEN last_id IS NULL THEN '' ELSE format('WHERE id > %L', last_id) END,
        max_rows)
        INTO n, next_id;
    UPDATE public.container_logs_upgrade
    SET cursor_id = COALESCE(next_id, cursor_id), copied = copied + n;
    RETURN n;
END
$$;

-- Checks the copy and swaps the tables; returns the number of rows, or
-- NULL when no upgrade was under way. Raises, changing nothing, if the
-- copy is not equal to the table.
CREATE OR REPLACE FUNCTION public.container_logs_upgrade_finish()
RETURNS BIGINT
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    live BIGINT;
    copied_rows BIGINT;
    suffix TEXT;
    month DATE;
BEGIN
    IF to_regclass('public.container_logs_next') IS NULL THEN
        RETURN NULL;
    END IF;
    -- Writers wait from here until the swap commits; readers do not.
    LOCK TABLE public.container_logs IN SHARE ROW EXCLUSIVE MODE;
    -- Whatever the batches have not reached yet is copied now (with an
    -- empty table, that is everything).
    INSERT INTO public.container_logs_next
        SELECT * FROM public.container_logs o
        WHERE NOT EXISTS (SELECT 1 FROM public.container_logs_next n
                          WHERE n.id = o.id AND n.captured_at = o.captured_at)
        ON CONFLICT (id, captured_at) DO NOTHING;
    -- Equal counts, and every live row found identical in the copy: the
    -- two are the same rows.
    SELECT count(*) INTO live FROM public.container_logs;
    SELECT count(*) INTO copied_rows FROM public.container_logs_next;
    IF live <> copied_rows OR EXISTS (
        SELECT * FROM public.container_logs
        EXCEPT ALL
        SELECT * FROM public.container_logs_next
    ) THEN
        RAISE EXCEPTION 'container_logs upgrade: the partitioned copy (% rows) differs from the table (% rows); nothing was changed', copied_rows, live
            USING HINT = 'Run gatelog migrate --central again; the copy resumes.';
    END IF;

    -- Rows that arrived during the upgrade for a month without a partition
    -- get theirs, so the default partition starts empty.
    FOR month IN
        SELECT DISTINCT date_trunc('month', captured_at AT TIME ZONE 'UTC')::date
        FROM public.container_logs_default
    LOOP
        PERFORM public.container_logs_ensure_partition('container_logs_next', month);
    END LOOP;

    -- The swap. Dropping the table also drops its mirror trigger, its
    -- indexes and policies, and takes it out of any publication.
    DROP TABLE public.container_logs;
    DROP TABLE public.container_logs_upgrade;
    ALTER TABLE public.container_logs_next RENAME TO container_logs;
    ALTER TABLE public.container_logs RENAME CONSTRAINT container_logs_next_pkey TO container_logs_pkey;
    FOREACH suffix IN ARRAY ARRAY['captured_at', 'site_captured_at', 'owner_number',
                                  'site_updated_at', 'number_prefix', 'number_trgm'] LOOP
        IF to_regclass('public.idx_container_logs_next_' || suffix) IS NOT NULL THEN
            EXECUTE format('ALTER INDEX public.%I RENAME TO %I',
                           'idx_container_logs_next_' || suffix, 'idx_container_logs_' || suffix);
        END IF;
    END LOOP;

    -- Everything the earlier files gave the table, in this transaction, so
    -- no writer ever meets the table without its guards.
    CREATE TRIGGER container_logs_guard_site
        BEFORE UPDATE ON public.container_logs
        FOR EACH ROW EXECUTE FUNCTION public.container_logs_guard_site();
    CREATE TRIGGER container_logs_keep_newest
        BEFORE UPDATE ON public.container_logs
        FOR EACH ROW EXECUTE FUNCTION public.container_logs_keep_newest();
    CREATE TRIGGER container_logs_move_passage
        BEFORE INSERT ON public.container_logs
        FOR EACH ROW EXECUTE FUNCTION public.container_logs_move_passage();
    REVOKE ALL ON public.container_logs FROM PUBLIC, anon, authenticated;
    GRANT SELECT ON public.container_logs TO authenticated;
    GRANT SELECT, INSERT, UPDATE, DELETE ON public.container_logs TO service_role;
    ALTER TABLE public.container_logs ENABLE ROW LEVEL SECURITY;
    CREATE POLICY container_logs_service_role_all ON public.container_logs
        FOR ALL TO service_role USING (true) WITH CHECK (true);
    CREATE POLICY container_logs_authenticated_read ON public.container_logs
        FOR SELECT TO authenticated USING (true);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime') THEN
        -- Changes then arrive under the table's own name, not a partition's.
        ALTER PUBLICATION supabase_realtime SET (publish_via_partition_root = true);
        ALTER PUBLICATION supabase_realtime ADD TABLE public.container_logs;
    END IF;
    PERFORM public.container_logs_maintain();
    NOTIFY pgrst, 'reload schema';
    RETURN copied_rows;
END
$$;

-- Only the schema's owner runs these; PostgREST must not offer them.
DO $$
DECLARE
    f TEXT;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'public.container_logs_partition_name(date)',
        'public.container_logs_ensure_partition(text, date)',
        'public.container_logs_lock_partition(text)',
        'public.container_logs_ensure_indexes(text)',
        'public.container_logs_maintain(integer)',
        'public.container_logs_upgrade_step(integer)',
        'public.container_logs_upgrade_finish()'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, anon, authenticated', f);
    END LOOP;
END
$$;

-- 5. Prepare the upgrade of a v1 table (once).
DO $$
DECLARE
    month DATE;
    i INTEGER;
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class
        WHERE oid = to_regclass('public.container_logs')) IS DISTINCT FROM 'r'
       OR to_regclass('public.container_logs_next') IS NOT NULL THEN
        RETURN;
    END IF;
    -- The same columns, in the same order, so rows copy as they are.
    CREATE TABLE public.container_logs_next (
        LIKE public.container_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS
    ) PARTITION BY RANGE (captured_at);
    ALTER TABLE public.container_logs_next
        ADD CONSTRAINT container_logs_next_pkey PRIMARY KEY (id, captured_at);
    CREATE TABLE public.container_logs_default PARTITION OF public.container_logs_next DEFAULT;
    PERFORM public.container_logs_lock_partition('container_logs_default');
    -- A partition for every month that holds rows, found by skipping
    -- through the captured_at index a month at a time.
    FOR month IN
        WITH RECURSIVE months(m) AS (
            SELECT date_trunc('month', min(captured_at) AT TIME ZONE 'UTC')
            FROM public.container_logs
            UNION ALL
            SELECT (SELECT date_trunc('month', min(c.captured_at) AT TIME ZONE 'UTC')
                    FROM public.container_logs c
                    WHERE c.captured_at >= (months.m + INTERVAL '1 month') AT TIME ZONE 'UTC')
            FROM months WHERE months.m IS NOT NULL
        )
        SELECT m::date FROM months WHERE m IS NOT NULL
    LOOP
        PERFORM public.container_logs_ensure_partition('container_logs_next', month);
    END LOOP;
    FOR i IN 0..3 LOOP
        PERFORM public.container_logs_ensure_partition(
            'container_logs_next',
            (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date);
    END LOOP;
    PERFORM public.container_logs_ensure_indexes('container_logs_next');
    -- Where the batches have got to; committed with each batch.
    CREATE TABLE public.container_logs_upgrade (
        cursor_id  UUID,
        copied     BIGINT NOT NULL DEFAULT 0,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    INSERT INTO public.container_logs_upgrade DEFAULT VALUES;
    PERFORM public.container_logs_lock_partition('container_logs_upgrade');
    CREATE TRIGGER container_logs_mirror
        AFTER INSERT OR UPDATE OR DELETE ON public.container_logs
        FOR EACH ROW EXECUTE FUNCTION public.container_logs_mirror();
END
$$;

-- 6. An empty table (a new database) has nothing to copy: swap it now.
DO $$
BEGIN
    IF to_regclass('public.container_logs_next') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.container_logs) THEN
        PERFORM public.container_logs_upgrade_finish();
    END IF;
END
$$;

-- 7. On every run, once partitioned: the months ahead, the indexes (the
--    trigram one appears once pg_trgm does), the move trigger, and the
--    publication's option.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class
        WHERE oid = to_regclass('public.container_logs')) IS DISTINCT FROM 'p' THEN
        RETURN;
    END IF;
    PERFORM public.container_logs_maintain();
    PERFORM public.container_logs_ensure_indexes('container_logs');
    CREATE OR REPLACE TRIGGER container_logs_move_passage
        BEFORE INSERT ON public.container_logs
        FOR EACH ROW EXECUTE FUNCTION public.container_logs_move_passage();
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime') THEN
        ALTER PUBLICATION supabase_realtime SET (publish_via_partition_root = true);
    END IF;
END
$$;

NOTIFY pgrst, 'reload schema';
