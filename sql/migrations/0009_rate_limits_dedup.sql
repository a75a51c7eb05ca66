-- Rate limits and dedup windows.
--
-- A rate limit is a token bucket, one row per name: `tokens` as of `refilled_at`, refilled
-- at `per_second` up to `burst`. The claim takes tokens by updating that row in its own
-- statement, so two claims on one limit queue on its row lock and the second computes
-- from what the first left: a start is never admitted on a token another claim took. The
-- bucket's arithmetic happens in the UPDATE's SET (the row's latest version), and
-- `granted` records what that update gave, for the claim to read back. `paused_until` is
-- set when a target answers 429/503 with Retry-After: no run of the limit starts before it.
--
-- Runs carry their task's rate limit (as type, queue and the concurrency key), so the claim
-- filters on one table.
--
-- A dedup window: a task's `dedup_key`, with the window a create asks for (`pending`: the
-- task has a pending run; `active`: pending or running) and what a duplicate does (`keep`,
-- `replace`). Creates with a key serialise on an advisory lock of the key, so two at once
-- never both pass.
-- depends: 0008_concurrency

CREATE TABLE skiplock_rate_limits (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$'),
    per_second   double precision NOT NULL CHECK (per_second > 0),
    burst        integer NOT NULL CHECK (burst >= 1),
    tokens       double precision NOT NULL,
    refilled_at  timestamptz NOT NULL,
    granted      integer NOT NULL DEFAULT 0,
    paused_until timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

ALTER TABLE skiplock_tasks
    ADD COLUMN rate_limit text,
    ADD COLUMN dedup_key text CHECK (length(dedup_key) BETWEEN 1 AND 200),
    ADD COLUMN dedup_while text CHECK (dedup_while IN ('pending', 'active')),
    ADD COLUMN dedup_on_duplicate text CHECK (dedup_on_duplicate IN ('keep', 'replace'));
CREATE INDEX skiplock_tasks_rate_limit ON skiplock_tasks (rate_limit) WHERE rate_limit IS NOT NULL;
CREATE INDEX skiplock_tasks_dedup ON skiplock_tasks (dedup_key) WHERE dedup_key IS NOT NULL;

ALTER TABLE skiplock_runs ADD COLUMN rate_limit text;
ALTER TABLE skiplock_run_history ADD COLUMN rate_limit text;
ALTER TABLE skiplock_run_latest ADD COLUMN rate_limit text;
-- The wake-up timer looks for due runs held back by an empty bucket.
CREATE INDEX skiplock_runs_rate_limited ON skiplock_runs (rate_limit, due_at)
    WHERE state = 'pending' AND rate_limit IS NOT NULL;

CREATE OR REPLACE VIEW skiplock_all_runs AS
    SELECT * FROM skiplock_runs
    UNION ALL SELECT * FROM skiplock_run_history
    UNION ALL SELECT * FROM skiplock_run_latest;

-- The queue's update trigger, moving the rate limit with the run.
CREATE OR REPLACE FUNCTION skiplock_runs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ended uuid[];
    back uuid[];
BEGIN
    INSERT INTO skiplock_run_counts (queue, state, shard, n)
    SELECT queue, state, pg_backend_pid(), sum(d)
    FROM (SELECT queue, state, 1 AS d FROM n UNION ALL SELECT queue, state, -1 FROM o) x
    GROUP BY queue, state HAVING sum(d) <> 0 ORDER BY queue, state
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n;
    back := ARRAY(SELECT n.id FROM n JOIN o ON o.id = n.id
                  WHERE n.state = 'pending' AND o.state = 'running' AND o.concurrency_key IS NOT NULL);
    IF cardinality(back) > 0 THEN
        DELETE FROM skiplock_concurrency_slots WHERE run_id = ANY(back);
    END IF;
    ended := ARRAY(SELECT id FROM n WHERE state IN ('succeeded', 'failed', 'cancelled', 'skipped'));
    IF cardinality(ended) > 0 THEN
        PERFORM set_config('skiplock.moving', 'on', true);
        WITH gone AS (
            DELETE FROM skiplock_runs r WHERE r.id = ANY(ended)
            RETURNING r.id, r.task_id, r.attempt, r.state, r.type, r.queue, r.priority, r.scheduled_for,
                      r.due_at, r.started_at, r.finished_at, r.worker_id, r.coordinator_id, r.lease_token,
                      r.lease_expires_at, r.deadline_at, r.result, r.error, r.reason, r.created_at, r.seq,
                      r.concurrency_key, r.concurrency_limit, r.rate_limit
        )
        INSERT INTO skiplock_run_history
        SELECT id, task_id, attempt, state, type, queue, priority, scheduled_for, due_at, started_at,
               coalesce(finished_at, now()), worker_id, coordinator_id, lease_token, lease_expires_at,
               deadline_at, result, error, reason, created_at, seq, concurrency_key, concurrency_limit,
               rate_limit
        FROM gone;
        PERFORM set_config('skiplock.moving', 'off', true);
    END IF;
    RETURN NULL;
END $$;

-- The queue's delete trigger, now also waking coordinators when a concurrency slot frees:
-- a run of that key may be waiting on another coordinator, which no result of its own
-- would wake. One NOTIFY per statement (and only for keyed runs), not per run.
CREATE OR REPLACE FUNCTION skiplock_runs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keyed uuid[];
BEGIN
    IF NOT skiplock_moving() THEN
        INSERT INTO skiplock_run_counts (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid(), -count(*) FROM o GROUP BY queue, state ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n;
    END IF;
    IF TG_TABLE_NAME = 'skiplock_runs' THEN
        keyed := ARRAY(SELECT id FROM o WHERE concurrency_key IS NOT NULL);
        IF cardinality(keyed) > 0 THEN
            DELETE FROM skiplock_concurrency_slots WHERE run_id = ANY(keyed);
            PERFORM pg_notify('skiplock_wake', extract(epoch FROM now())::text);
        END IF;
    END IF;
    RETURN NULL;
END $$;
