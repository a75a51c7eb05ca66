-- What an idempotent create asked for, as a hash of its validated fields: the same key with
-- a different request is a conflict, not a silent answer with the first task. NULL for
-- tasks made before this column existed (nothing to compare: they match).
-- depends: 0003_claim_by_type

ALTER TABLE skiplock_tasks ADD COLUMN request_hash text;
