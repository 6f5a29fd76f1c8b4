-- A client's `id` is an idempotency key for one read at this site. It used
-- to become the sighting's id, and the id of the passage that read opened,
-- so one client's id could name another site's passage centrally. Now every
-- sighting and passage id is made here, and the client's id is kept beside
-- the sighting with a digest of what the client sent: a retry with the same
-- content replays the original answer, other content under the same id is
-- refused (409).
--
-- Sightings stored before this migration keep their ids and have no
-- client_id; a retry of one of them is taken as a new read.
ALTER TABLE sightings ADD COLUMN client_id TEXT;
ALTER TABLE sightings ADD COLUMN content_digest TEXT;
CREATE UNIQUE INDEX sightings_by_client_id ON sightings (client_id) WHERE client_id IS NOT NULL;
