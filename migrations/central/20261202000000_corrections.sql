-- gatelog central schema: the history of a passage's number.
--
-- A site corrects a passage's number when the consensus of its reads
-- moves, or when an operator corrects it by hand. The corrected row is sent
-- again (its version is bumped), and `corrections` carries the history:
-- a JSON array of {from, to, rule, at, by}, oldest first, so the head
-- office sees why a number changed.
--
-- Idempotent, like every central migration.

ALTER TABLE public.container_logs
    ADD COLUMN IF NOT EXISTS corrections jsonb NOT NULL DEFAULT '[]'::jsonb;

-- PostgREST caches the schema; tell it about the new column.
NOTIFY pgrst, 'reload schema';
