-- gatelog central schema: live notifications for the head-office view.
--
-- `gatelog central serve` pushes every site's changes to its dashboards
-- within a second. It learns of them from PostgreSQL itself: this trigger
-- sends a small notification on channel `gatelog_container_logs` for each
-- row a site inserts or updates, and the server LISTENs, fetches the row
-- by its key and pushes `new_log` (an insert) or `duplicate` (an update).
-- LISTEN/NOTIFY needs no other service and works on plain PostgreSQL and
-- on Supabase's direct (session) connection. A notification is sent at
-- commit, so a listener never sees a row that was rolled back.
--
-- The payload is small and fixed (well under NOTIFY's 8,000 bytes):
--   {"id": …, "captured_at": …, "site": …, "version": …, "kind": "insert"|"update"}
--
-- The trigger is on the table as a whole: on the partitioned table a row
-- trigger is cloned onto every partition, those made later by
-- `container_logs_maintain` and those attached with rows included. Only
-- rows of the live table notify: while an in-place upgrade to the
-- partitioned table is under way, `container_logs_next` carries the
-- trigger too (so it keeps it when the swap renames it), but its copies
-- of rows stay silent, since the live table already announced them.
--
-- Idempotent, like every central migration; applies to the table
-- partitioned or not, and in the middle of an upgrade.

CREATE OR REPLACE FUNCTION public.container_logs_notify()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    live REGCLASS := pg_catalog.to_regclass('public.container_logs');
BEGIN
    IF TG_RELID IS DISTINCT FROM live
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits
                       WHERE inhrelid = TG_RELID AND inhparent = live) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_catalog.pg_notify('gatelog_container_logs', pg_catalog.json_build_object(
        'id', NEW.id,
        'captured_at', NEW.captured_at,
        'site', NEW.site_id,
        'version', NEW.version,
        'kind', CASE TG_OP WHEN 'INSERT' THEN 'insert' ELSE 'update' END)::text);
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION public.container_logs_notify() FROM PUBLIC, anon, authenticated;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['container_logs', 'container_logs_next'] LOOP
        IF to_regclass('public.' || t) IS NOT NULL THEN
            EXECUTE format(
                'CREATE OR REPLACE TRIGGER container_logs_notify
                     AFTER INSERT OR UPDATE ON public.%I
                     FOR EACH ROW EXECUTE FUNCTION public.container_logs_notify()', t);
        END IF;
    END LOOP;
END
$$;
