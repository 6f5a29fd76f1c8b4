-- gatelog central schema: gate operations.
--
-- A passage's direction (`in`, `out`, `none`) and lane come from its
-- camera; `truck_plate` and `iso_type` (ISO 6346 size-type code) from its
-- reads; `dwell_secs` is set on a gate-out. Added in place to the table,
-- partitioned or not, with its rows; existing rows read `none` and NULLs.
--
-- Idempotent, like every central migration.

ALTER TABLE public.container_logs
    ADD COLUMN IF NOT EXISTS direction   text NOT NULL DEFAULT 'none',
    ADD COLUMN IF NOT EXISTS lane        text,
    ADD COLUMN IF NOT EXISTS truck_plate text,
    ADD COLUMN IF NOT EXISTS iso_type    text,
    ADD COLUMN IF NOT EXISTS dwell_secs  bigint;

-- An upgrade to the partitioned table that is still under way copies rows
-- with SELECT *: its new table takes the same columns, in the same order.
ALTER TABLE IF EXISTS public.container_logs_next
    ADD COLUMN IF NOT EXISTS direction   text NOT NULL DEFAULT 'none',
    ADD COLUMN IF NOT EXISTS lane        text,
    ADD COLUMN IF NOT EXISTS truck_plate text,
    ADD COLUMN IF NOT EXISTS iso_type    text,
    ADD COLUMN IF NOT EXISTS dwell_secs  bigint;

-- PostgREST caches the schema; tell it about the new columns.
NOTIFY pgrst, 'reload schema';
