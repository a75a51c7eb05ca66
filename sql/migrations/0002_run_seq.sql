-- A strictly increasing number per run: "the latest run of a task" must not depend on two
-- runs made in one transaction (a retry and a cron slot share now()) having different times.
-- depends: 0001_initial

ALTER TABLE skiplock_runs ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX skiplock_runs_task_seq ON skiplock_runs (task_id, seq DESC);
