-- gatelog central schema: one site can never overwrite another site's row.
--
-- Passage ids are generated on site, and many sites write into this one
-- table. If two sites ever send the same id (a bug, a copied store, a
-- client that chose the id), the upsert would quietly replace one site's
-- passage with the other's, and both sites would believe their own row is
-- the one stored. So an update that would change `site_id` is refused with
-- an integrity-constraint error (SQLSTATE 23000). Both sync targets treat
-- that class as "the centre refused this row": the sending site splits its
-- batch and keeps the refused passage as a dead letter, visible and
-- retryable, instead of marking it synced.
--
-- Idempotent, like every central migration.

CREATE OR REPLACE FUNCTION public.container_logs_guard_site()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF NEW.site_id IS DISTINCT FROM OLD.site_id THEN
        RAISE EXCEPTION 'passage % belongs to site %, not to site %',
                OLD.id, OLD.site_id, NEW.site_id
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'Passage ids are per site; this site''s passage is kept locally as a dead letter.';
    END IF;
    RETURN NEW;
END
$$;

-- PostgreSQL fires the BEFORE UPDATE triggers of one table in the order of
-- their names. `container_logs_guard_site` sorts before
-- `container_logs_keep_newest`, which skips an update whose version is not
-- newer by returning NULL, and a skipped update fires no later trigger. So
-- the guard must come first, or a foreign row with an older version would
-- be skipped silently and its site would count it as delivered.
CREATE OR REPLACE TRIGGER container_logs_guard_site
    BEFORE UPDATE ON public.container_logs
    FOR EACH ROW EXECUTE FUNCTION public.container_logs_guard_site();
