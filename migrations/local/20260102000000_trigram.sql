-- Substring search of container numbers (the API's `q`): a trigram index
-- over passages.container, kept in step by triggers. Without it, a rare
-- substring means scanning every passage.
CREATE VIRTUAL TABLE passages_trigram USING fts5 (
    container,
    content = 'passages',
    content_rowid = 'rowid',
    tokenize = 'trigram'
);

INSERT INTO passages_trigram (passages_trigram) VALUES ('rebuild');

CREATE TRIGGER passages_trigram_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_trigram (rowid, container) VALUES (new.rowid, new.container);
END;

CREATE TRIGGER passages_trigram_delete AFTER DELETE ON passages BEGIN
    INSERT INTO passages_trigram (passages_trigram, rowid, container)
    VALUES ('delete', old.rowid, old.container);
END;

-- Only a real change of number touches the index; a duplicate read
-- rewrites the column with the same value.
CREATE TRIGGER passages_trigram_update AFTER UPDATE OF container ON passages
WHEN old.container IS NOT new.container BEGIN
    INSERT INTO passages_trigram (passages_trigram, rowid, container)
    VALUES ('delete', old.rowid, old.container);
    INSERT INTO passages_trigram (rowid, container) VALUES (new.rowid, new.container);
END;
