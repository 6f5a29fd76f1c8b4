-- Recognition quality: a passage's number is the weighed consensus of its
-- reads, and every change of it is kept.
--
-- passages.votes: the weight of each number its reads carried, as a JSON
-- object {"MSCU123456": 4.5, ...}, so a new read can move the consensus
-- without rereading every sighting.
-- passages.corrections: the history of the number, a JSON array of
-- {from, to, rule, at, by}, oldest first.
-- sightings.corrected_from / rule: a read whose own text was corrected
-- (a look-alike character, or the one candidate the check digit allows)
-- keeps the text it was corrected from; raw keeps the whole read.
ALTER TABLE passages ADD COLUMN votes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE passages ADD COLUMN corrections TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sightings ADD COLUMN corrected_from TEXT;
ALTER TABLE sightings ADD COLUMN rule TEXT;
