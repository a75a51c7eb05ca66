-- The claim index leads with the run's type: pending runs of a type no connected worker
-- handles (a backlog of shell tasks and no --allow-shell worker) are no longer scanned by
-- every claim for other types. Measured with 100,000 such runs: 40 ms → 13 ms per claim.
-- depends: 0002_run_seq

DROP INDEX skiplock_runs_claim;
CREATE INDEX skiplock_runs_claim ON skiplock_runs (type, priority DESC, due_at) WHERE state = 'pending';
