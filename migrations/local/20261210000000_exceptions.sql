-- The exceptions queue lists passages whose number no read has verified
-- beside unresolved reads, newest first, a keyset page at a time on
-- (captured_at, id). passages_unverified (on last_seen_at) serves the fold
-- rule's candidate search; this one serves the listing's order. Both are
-- partial, so a passage enters them only while its check digit is not
-- verified, and the rest of ingest pays nothing for them.
CREATE INDEX passages_unverified_by_time ON passages (captured_at, id) WHERE check_digit_ok = 0;
