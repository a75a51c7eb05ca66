-- Concurrency keys: at most `concurrency_limit` runs of tasks sharing `concurrency_key` are
-- running at once, cluster-wide. The guarantee is a constraint, not a count: a run takes a
-- numbered slot (1..limit) in skiplock_concurrency_slots, whose primary key (key, slot)
-- admits one holder per slot whatever any transaction's snapshot says (pgqueuer#761 was a
-- count read inside the claim's snapshot; its fix, PR#777, numbered slots under a unique
-- index). A slot goes with its run: the row is deleted with the live run (ON DELETE CASCADE,
-- when it ends and moves to the history), and by the queue's trigger when a running run
-- goes back to pending (unclaimed, queued behind a cron run, its task paused). No statement
-- has to remember to give a slot back.
-- depends: 0007_queue_pauses

ALTER TABLE skiplock_tasks
    ADD COLUMN concurrency_key text CHECK (length(concurrency_key) BETWEEN 1 AND 200),
    ADD COLUMN concurrency_limit integer CHECK (concurrency_limit BETWEEN 1 AND 10000);

-- Copied onto runs (as type, queue and priority are) so the claim reads one table; the same
-- columns on the history keep the three run tables' rows alike.
ALTER TABLE skiplock_runs ADD COLUMN concurrency_key text, ADD COLUMN concurrency_limit integer;
ALTER TABLE skiplock_run_history ADD COLUMN concurrency_key text, ADD COLUMN concurrency_limit integer;
ALTER TABLE skiplock_run_latest ADD COLUMN concurrency_key text, ADD COLUMN concurrency_limit integer;

CREATE TABLE skiplock_concurrency_slots (
    key    text NOT NULL,
    slot   integer NOT NULL CHECK (slot >= 1),
    run_id uuid NOT NULL UNIQUE,
    PRIMARY KEY (key, slot)
);

CREATE OR REPLACE VIEW skiplock_all_runs AS
    SELECT * FROM skiplock_runs
    UNION ALL SELECT * FROM skiplock_run_history
    UNION ALL SELECT * FROM skiplock_run_latest;

-- The queue's update trigger, now also giving back the slot of a run that went from running
-- back to pending.
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
                      r.concurrency_key, r.concurrency_limit
        )
        INSERT INTO skiplock_run_history
        SELECT id, task_id, attempt, state, type, queue, priority, scheduled_for, due_at, started_at,
               coalesce(finished_at, now()), worker_id, coordinator_id, lease_token, lease_expires_at,
               deadline_at, result, error, reason, created_at, seq, concurrency_key, concurrency_limit
        FROM gone;
        PERFORM set_config('skiplock.moving', 'off', true);
    END IF;
    RETURN NULL;
END $$;

-- The queue's delete trigger, now also giving back the slots of deleted runs (also while a
-- trigger moves rows, which the counting skips).
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
        END IF;
    END IF;
    RETURN NULL;
END $$;
