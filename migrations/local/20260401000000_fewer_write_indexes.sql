-- The serial and whole-number indexes land at random positions, so every
-- ingest paid a page write in each. Searches by serial or number prefix
-- now go through the trigram index (see Store::substring_plan), which
-- ingest updates anyway.
DROP INDEX IF EXISTS passages_by_number;
DROP INDEX IF EXISTS passages_by_container;
