-- gatelog central schema: the seed's container_logs table, extended.
--
-- Apply with `gatelog migrate --central` (to postgres.url), paste into
-- Supabase's SQL editor, or ship with `supabase db push`. Every statement
-- is idempotent, so applying the file twice changes nothing, and a table
-- created earlier from the seed's SQL is upgraded in place.

-- 1. Roles. Supabase has them; on a plain PostgreSQL they are created
--    here, without login, so that the GRANTs and policies below mean the
--    same thing everywhere.
DO $$
DECLARE
    r TEXT;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
            EXCEPTION
                -- Roles are cluster-wide: another database's migration
                -- may have created it a moment ago.
                WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END
$$;

-- 2. The seed's table (SPEC §2; seed §4.4), as the seed wrote it except
--    that captured_at may not be NULL.
CREATE TABLE IF NOT EXISTS public.container_logs (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    captured_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    container_owner   TEXT NOT NULL,
    container_number  TEXT NOT NULL,
    source_video      TEXT,
    cropped_image_ref TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- 3. What operators need beyond the seed. Added one by one, so that a
--    table made from the seed's SQL gains them too.
ALTER TABLE public.container_logs
    -- The gate that recorded the passage; ids are generated on site, so
    -- many sites write here without conflict.
    ADD COLUMN IF NOT EXISTS site_id        TEXT NOT NULL DEFAULT 'unknown',
    ADD COLUMN IF NOT EXISTS check_digit    SMALLINT CHECK (check_digit BETWEEN 0 AND 9),
    ADD COLUMN IF NOT EXISTS check_digit_ok BOOLEAN NOT NULL DEFAULT false,
    -- Bit set: 1 check digit missing, 2 check digit wrong, 4 category
    -- letter not U/J/Z.
    ADD COLUMN IF NOT EXISTS flags          SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS camera_id      TEXT,
    ADD COLUMN IF NOT EXISTS confidence     DOUBLE PRECISION,
    ADD COLUMN IF NOT EXISTS seen_count     INTEGER NOT NULL DEFAULT 1 CHECK (seen_count >= 1),
    ADD COLUMN IF NOT EXISTS last_seen_at   TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The site's change counter. A write carrying an older version than
    -- the stored one is ignored (see the trigger below), so a late retry
    -- can never undo a newer state.
    ADD COLUMN IF NOT EXISTS version        BIGINT NOT NULL DEFAULT 1;

-- 4. The seed's two indexes, and the per-site listing.
CREATE INDEX IF NOT EXISTS idx_container_logs_owner_number
    ON public.container_logs (container_owner, container_number);
CREATE INDEX IF NOT EXISTS idx_container_logs_captured_at
    ON public.container_logs (captured_at DESC);
CREATE INDEX IF NOT EXISTS idx_container_logs_site_captured_at
    ON public.container_logs (site_id, captured_at DESC);

-- 5. Newest state wins. The direct target's upsert says so itself
--    (`ON CONFLICT (id) DO UPDATE … WHERE container_logs.version <
--    excluded.version`), but PostgREST's merge-duplicates upsert cannot
--    carry a WHERE. This trigger makes the rule hold for every writer: an
--    update with an older version, or one that changes nothing, is
--    skipped (a BEFORE trigger returning NULL skips the row). Updates at
--    the same version that do change something, such as an operator's
--    correction, still apply.
CREATE OR REPLACE FUNCTION public.container_logs_keep_newest()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF NEW.version < OLD.version OR NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER container_logs_keep_newest
    BEFORE UPDATE ON public.container_logs
    FOR EACH ROW EXECUTE FUNCTION public.container_logs_keep_newest();

-- 6. Privileges. New Supabase tables are no longer exposed to the API
--    roles automatically, and older projects exposed them to everyone, so
--    both directions are spelled out.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
REVOKE ALL ON public.container_logs FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.container_logs TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.container_logs TO service_role;

-- 7. Row-level security: service_role writes, authenticated reads, anon
--    gets nothing (no policy names it).
ALTER TABLE public.container_logs ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS container_logs_service_role_all ON public.container_logs;
CREATE POLICY container_logs_service_role_all ON public.container_logs
    FOR ALL TO service_role USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS container_logs_authenticated_read ON public.container_logs;
CREATE POLICY container_logs_authenticated_read ON public.container_logs
    FOR SELECT TO authenticated USING (true);

-- 8. Live updates for Supabase dashboards, when Realtime is installed.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')
       AND NOT EXISTS (
           SELECT 1 FROM pg_publication_tables
           WHERE pubname = 'supabase_realtime'
             AND schemaname = 'public' AND tablename = 'container_logs')
    THEN
        ALTER PUBLICATION supabase_realtime ADD TABLE public.container_logs;
    END IF;
END
$$;

-- 9. Retention: deletes passages captured more than `keep` ago, at most
--    `max_rows` per call so that a large purge does not hold one huge
--    transaction; call it until it returns 0 (pg_cron, say). Returns the
--    number of rows deleted. Only service_role may call it.
CREATE OR REPLACE FUNCTION public.container_logs_retention(
    keep INTERVAL,
    max_rows INTEGER DEFAULT 10000
)
RETURNS BIGINT
LANGUAGE sql
SET search_path = ''
AS $$
    WITH doomed AS (
        SELECT id FROM public.container_logs
        WHERE captured_at < now() - keep
        ORDER BY captured_at
        LIMIT max_rows
    ), gone AS (
        DELETE FROM public.container_logs c USING doomed d
        WHERE c.id = d.id
        RETURNING 1
    )
    SELECT count(*) FROM gone;
$$;

REVOKE ALL ON FUNCTION public.container_logs_retention(INTERVAL, INTEGER)
    FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.container_logs_retention(INTERVAL, INTEGER)
    TO service_role;
