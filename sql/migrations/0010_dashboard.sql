-- The dashboard's figures and the API's long-polls.
--
-- Per-minute figures (charts, and anyone else): runs ended per minute by queue and state,
-- with a histogram of start lateness and the summed run time. Kept by the history's insert
-- trigger (one upsert per statement, in the statement that ends the runs),
-- so a chart of the last hour reads at most 60 minutes of these rows, whatever the history
-- holds. Sharded by backend like the counters, so writers never wait for one another.
--
-- Lateness (started_at - due_at, in ms) falls in bucket 1 + the number of these bounds it
-- reaches: [0,1) [1,2) [2,5) [5,10) [10,20) [20,50) [50,100) [100,200) [200,500) [500,1000)
-- [1s,2s) [2s,5s) [5s,10s) [10s,30s) [30s,60s) [60s,∞); bucket 0: never started (skipped,
-- cancelled before it ran).
-- depends: 0009_rate_limits_dedup

CREATE TABLE skiplock_run_minutes (
    minute      timestamptz NOT NULL,
    queue       text NOT NULL,
    state       text NOT NULL,
    late_bucket smallint NOT NULL,
    shard       integer NOT NULL,
    n           bigint NOT NULL,
    run_ms      double precision NOT NULL,  -- summed finished_at - started_at
    PRIMARY KEY (minute, queue, state, late_bucket, shard)
);

CREATE FUNCTION skiplock_late_bucket(started timestamptz, due timestamptz) RETURNS smallint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN started IS NULL THEN 0
                ELSE 1 + width_bucket(greatest(0, extract(epoch FROM started - due) * 1000)::double precision,
                                      '{1,2,5,10,20,50,100,200,500,1000,2000,5000,10000,30000,60000}'::double precision[])
           END::smallint
$$;

CREATE OR REPLACE FUNCTION skiplock_history_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT skiplock_moving() THEN
        INSERT INTO skiplock_run_counts (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid(), count(*) FROM n GROUP BY queue, state ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n;
    END IF;
    INSERT INTO skiplock_task_last_run (task_id, run_id, state, finished_at, seq)
    SELECT DISTINCT ON (task_id) task_id, id, state, finished_at, seq FROM n ORDER BY task_id, seq DESC
    ON CONFLICT (task_id) DO UPDATE
    SET run_id = EXCLUDED.run_id, state = EXCLUDED.state, finished_at = EXCLUDED.finished_at, seq = EXCLUDED.seq
    WHERE skiplock_task_last_run.seq < EXCLUDED.seq;
    INSERT INTO skiplock_run_minutes (minute, queue, state, late_bucket, shard, n, run_ms)
    SELECT date_trunc('minute', finished_at), queue, state, skiplock_late_bucket(started_at, due_at),
           pg_backend_pid(), count(*),
           coalesce(sum(extract(epoch FROM finished_at - started_at) * 1000), 0)
    FROM n
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (minute, queue, state, late_bucket, shard)
    DO UPDATE SET n = skiplock_run_minutes.n + EXCLUDED.n, run_ms = skiplock_run_minutes.run_ms + EXCLUDED.run_ms;
    RETURN NULL;
END $$;

-- Long-polls (GET /api/tasks/{id}?wait_s=, GET /api/runs/{id}?wait_s=): an API request that
-- waits for a task or run to end registers it here for its wait, and LISTENs. Runs entering
-- the history NOTIFY `skiplock_ended` (one NOTIFY per statement, with the waited-for ids it
-- ended) only while someone waits: with no waiter, ending runs costs one look at an empty
-- table, not a NOTIFY (which takes a lock at commit that every notifying transaction shares).
CREATE UNLOGGED TABLE skiplock_waiters (
    waiter uuid PRIMARY KEY,
    id     uuid NOT NULL,  -- a task id or a run id
    since  timestamptz NOT NULL
);
CREATE INDEX skiplock_waiters_id ON skiplock_waiters (id);

CREATE FUNCTION skiplock_notify_waiters() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    IF EXISTS (SELECT 1 FROM skiplock_waiters) THEN
        SELECT string_agg(DISTINCT w.id::text, ',') INTO ids
        FROM skiplock_waiters w
        WHERE w.id IN (SELECT id FROM n UNION SELECT task_id FROM n);
        IF ids IS NOT NULL THEN
            PERFORM pg_notify('skiplock_ended', left(ids, 7900));
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER skiplock_run_history_waiters AFTER INSERT ON skiplock_run_history
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION skiplock_notify_waiters();
