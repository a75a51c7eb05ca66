-- History apart from the queue, and counts kept rather than counted.
--
-- skiplock_runs becomes the hot queue: pending and running runs only. A run that ends (any
-- statement that sets an ended state) is moved, in the same statement's trigger, into
-- skiplock_run_history: partitioned first by state class, because retention differs by
-- state (succeeded/skipped vs failed/cancelled), then by finished_at, one partition a day,
-- so retention drops whole partitions. Coordinators create partitions ahead and drop them
-- behind (coordinator/maintenance.py, under an advisory lock); the DEFAULT partitions catch
-- anything outside the partitions made (e.g. history migrated from before this change), and
-- retention deletes from them row by row. Each task's latest ended run is named in the
-- narrow skiplock_task_last_run (kept by the history's insert trigger), and rescued into
-- skiplock_run_latest before its partition is dropped. finish_runs, the hot path, deletes
-- and inserts itself (an UPDATE first would write each row, and its five index entries, once
-- more only to delete it).
--
-- Counts by (queue, state) and tasks by status are kept by statement-level triggers in rows
-- keyed by the backend's pid: a backend only ever updates its own rows, so the counters are
-- never a lock hot spot (and two transactions can never deadlock on them); reads sum them,
-- and maintenance folds the rows of backends that are gone into shard 0.
-- depends: 0005_run_reason

CREATE TABLE skiplock_run_history (
    id               uuid NOT NULL,
    task_id          uuid NOT NULL,
    attempt          integer NOT NULL,
    state            text NOT NULL CHECK (state IN ('succeeded', 'failed', 'cancelled', 'skipped')),
    type             text NOT NULL,
    queue            text NOT NULL,
    priority         integer NOT NULL,
    scheduled_for    timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz NOT NULL,
    worker_id        text,
    coordinator_id   text,
    lease_token      uuid,
    lease_expires_at timestamptz,
    deadline_at      timestamptz,
    result           jsonb,
    error            text,
    reason           text NOT NULL,
    created_at       timestamptz NOT NULL,
    seq              bigint NOT NULL
) PARTITION BY LIST (state);

CREATE TABLE skiplock_run_history_ok PARTITION OF skiplock_run_history
    FOR VALUES IN ('succeeded', 'skipped') PARTITION BY RANGE (finished_at);
CREATE TABLE skiplock_run_history_failed PARTITION OF skiplock_run_history
    FOR VALUES IN ('failed', 'cancelled') PARTITION BY RANGE (finished_at);
CREATE TABLE skiplock_run_history_ok_default PARTITION OF skiplock_run_history_ok DEFAULT;
CREATE TABLE skiplock_run_history_failed_default PARTITION OF skiplock_run_history_failed DEFAULT;

-- Each list filter of GET /api/runs reads newest first from one of these, per partition.
CREATE INDEX skiplock_run_history_id ON skiplock_run_history (id);
CREATE INDEX skiplock_run_history_created ON skiplock_run_history (created_at DESC, id DESC);
CREATE INDEX skiplock_run_history_task ON skiplock_run_history (task_id, created_at DESC, id DESC);
CREATE INDEX skiplock_run_history_type ON skiplock_run_history (type, created_at DESC, id DESC);
CREATE INDEX skiplock_run_history_worker ON skiplock_run_history (worker_id, created_at DESC, id DESC)
    WHERE worker_id IS NOT NULL;
-- A cron slot is made once: inserting one checks the history too (see insert_runs).
CREATE INDEX skiplock_run_history_slot ON skiplock_run_history (task_id, scheduled_for, attempt);

-- Each task's latest ended run, kept when its partition is dropped.
CREATE TABLE skiplock_run_latest (LIKE skiplock_run_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE skiplock_run_latest ADD PRIMARY KEY (id);
CREATE INDEX skiplock_run_latest_task ON skiplock_run_latest (task_id, created_at DESC, id DESC);
CREATE INDEX skiplock_run_latest_created ON skiplock_run_latest (created_at DESC, id DESC);
CREATE INDEX skiplock_run_latest_state ON skiplock_run_latest (state, created_at DESC, id DESC);
CREATE INDEX skiplock_run_latest_type ON skiplock_run_latest (type, created_at DESC, id DESC);
CREATE INDEX skiplock_run_latest_worker ON skiplock_run_latest (worker_id, created_at DESC, id DESC)
    WHERE worker_id IS NOT NULL;

-- Each task's latest ended run: its id, and the state and finish time that pick its partition.
-- A table of its own, narrow, so recording it costs one small upsert, not an update of the
-- wide, many-indexed task row.
CREATE TABLE skiplock_task_last_run (
    task_id     uuid PRIMARY KEY,
    run_id      uuid NOT NULL,
    state       text NOT NULL,
    finished_at timestamptz NOT NULL,
    seq         bigint NOT NULL
);

-- Filters of GET /api/tasks, newest first (the derived states: see list_tasks).
CREATE INDEX skiplock_tasks_status ON skiplock_tasks (status, created_at DESC, id DESC);
CREATE INDEX skiplock_tasks_type ON skiplock_tasks (type, created_at DESC, id DESC);
CREATE INDEX skiplock_tasks_queue ON skiplock_tasks (queue, created_at DESC, id DESC);
CREATE INDEX skiplock_tasks_name ON skiplock_tasks ((name COLLATE "C"));

-- The hot table has no finished runs any more. By task, skiplock_runs_task serves every read
-- (a task has a run or two live), so the seq index goes. GET /api/runs?type= reads the queue
-- newest first by type: that index is opt-in (a predicate that is always true, which only a
-- read that states it can use), so the claim never prefers it to its own.
DROP INDEX skiplock_runs_finished;
DROP INDEX skiplock_runs_task_seq;
CREATE INDEX skiplock_runs_type ON skiplock_runs (type, created_at DESC, id DESC) WHERE reason IS NOT NULL;

CREATE TABLE skiplock_run_counts (
    queue text NOT NULL,
    state text NOT NULL,
    shard integer NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, state, shard)
);

CREATE TABLE skiplock_task_counts (
    status text NOT NULL,
    shard  integer NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (status, shard)
);

-- Set while a trigger moves rows itself, so the rows it moves are not counted twice.
CREATE FUNCTION skiplock_moving() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(current_setting('skiplock.moving', true), '') = 'on' $$;

CREATE FUNCTION skiplock_runs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT skiplock_moving() THEN
        INSERT INTO skiplock_run_counts (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid(), count(*) FROM n GROUP BY queue, state ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION skiplock_runs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT skiplock_moving() THEN
        INSERT INTO skiplock_run_counts (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid(), -count(*) FROM o GROUP BY queue, state ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

-- Every statement that changes runs: count the change, and move the runs it ended into the
-- history. Ids are passed as an array (not joined to the transition table, which has no
-- statistics) so the delete is an index scan.
CREATE FUNCTION skiplock_runs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ended uuid[];
BEGIN
    INSERT INTO skiplock_run_counts (queue, state, shard, n)
    SELECT queue, state, pg_backend_pid(), sum(d)
    FROM (SELECT queue, state, 1 AS d FROM n UNION ALL SELECT queue, state, -1 FROM o) x
    GROUP BY queue, state HAVING sum(d) <> 0 ORDER BY queue, state
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n;
    ended := ARRAY(SELECT id FROM n WHERE state IN ('succeeded', 'failed', 'cancelled', 'skipped'));
    IF cardinality(ended) > 0 THEN
        PERFORM set_config('skiplock.moving', 'on', true);
        WITH gone AS (
            DELETE FROM skiplock_runs r WHERE r.id = ANY(ended)
            RETURNING r.id, r.task_id, r.attempt, r.state, r.type, r.queue, r.priority, r.scheduled_for,
                      r.due_at, r.started_at, r.finished_at, r.worker_id, r.coordinator_id, r.lease_token,
                      r.lease_expires_at, r.deadline_at, r.result, r.error, r.reason, r.created_at, r.seq
        )
        INSERT INTO skiplock_run_history
        SELECT id, task_id, attempt, state, type, queue, priority, scheduled_for, due_at, started_at,
               coalesce(finished_at, now()), worker_id, coordinator_id, lease_token, lease_expires_at,
               deadline_at, result, error, reason, created_at, seq
        FROM gone;
        PERFORM set_config('skiplock.moving', 'off', true);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER skiplock_runs_inserted AFTER INSERT ON skiplock_runs
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION skiplock_runs_inserted();
CREATE TRIGGER skiplock_runs_deleted AFTER DELETE ON skiplock_runs
    REFERENCING OLD TABLE AS o FOR EACH STATEMENT EXECUTE FUNCTION skiplock_runs_deleted();
CREATE TRIGGER skiplock_runs_updated AFTER UPDATE ON skiplock_runs
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION skiplock_runs_updated();
-- Runs entering the history: counted (unless moved by the trigger above, which counted them
-- already), and each task's latest one recorded.
CREATE FUNCTION skiplock_history_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
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
    RETURN NULL;
END $$;

CREATE TRIGGER skiplock_run_history_inserted AFTER INSERT ON skiplock_run_history
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION skiplock_history_inserted();
-- Rows leaving the history one by one (retention of the default partitions, the latest-run
-- table) are counted out; a dropped partition is counted out by the maintenance that drops it.
CREATE TRIGGER skiplock_run_history_deleted AFTER DELETE ON skiplock_run_history
    REFERENCING OLD TABLE AS o FOR EACH STATEMENT EXECUTE FUNCTION skiplock_runs_deleted();
CREATE TRIGGER skiplock_run_latest_deleted AFTER DELETE ON skiplock_run_latest
    REFERENCING OLD TABLE AS o FOR EACH STATEMENT EXECUTE FUNCTION skiplock_runs_deleted();

CREATE FUNCTION skiplock_tasks_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO skiplock_task_counts (status, shard, n)
        SELECT status, pg_backend_pid(), count(*) FROM n GROUP BY status ORDER BY status
        ON CONFLICT (status, shard) DO UPDATE SET n = skiplock_task_counts.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO skiplock_task_counts (status, shard, n)
        SELECT status, pg_backend_pid(), -count(*) FROM o GROUP BY status ORDER BY status
        ON CONFLICT (status, shard) DO UPDATE SET n = skiplock_task_counts.n + EXCLUDED.n;
    ELSE
        INSERT INTO skiplock_task_counts (status, shard, n)
        SELECT status, pg_backend_pid(), sum(d)
        FROM (SELECT status, 1 AS d FROM n UNION ALL SELECT status, -1 FROM o) x
        GROUP BY status HAVING sum(d) <> 0 ORDER BY status
        ON CONFLICT (status, shard) DO UPDATE SET n = skiplock_task_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER skiplock_tasks_inserted AFTER INSERT ON skiplock_tasks
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION skiplock_tasks_counted();
CREATE TRIGGER skiplock_tasks_deleted AFTER DELETE ON skiplock_tasks
    REFERENCING OLD TABLE AS o FOR EACH STATEMENT EXECUTE FUNCTION skiplock_tasks_counted();
CREATE TRIGGER skiplock_tasks_updated AFTER UPDATE ON skiplock_tasks
    REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION skiplock_tasks_counted();

-- The history's daily partition of class `cls` ('ok' or 'failed') for the UTC day `day`,
-- made if missing. Rows that the DEFAULT partition already holds for that day (history from
-- before this schema, or a clock that jumped) are moved into it first, since PostgreSQL
-- will not make a partition whose rows sit in the default one.
CREATE FUNCTION skiplock_history_partition(cls text, day date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    parent text := 'skiplock_run_history_' || cls;
    leaf text := format('skiplock_run_history_%s_%s', cls, to_char(day, 'YYYYMMDD'));
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    crowded boolean;
BEGIN
    IF to_regclass(leaf) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE finished_at >= $1 AND finished_at < $2)',
                   parent || '_default') INTO crowded USING lo, hi;
    IF crowded THEN
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', leaf, parent);
        EXECUTE format('WITH m AS (DELETE FROM %I WHERE finished_at >= $1 AND finished_at < $2 RETURNING *) '
                       'INSERT INTO %I SELECT * FROM m', parent || '_default', leaf) USING lo, hi;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, leaf, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', leaf, parent, lo, hi);
    END IF;
    RETURN true;
END $$;

-- One pass of history maintenance, run by coordinators (any number: one at a time gets the
-- advisory lock, the others return at once). Makes the partitions from yesterday to
-- `ahead_days` ahead; drops those wholly older than their class's retention, first keeping
-- each task's latest run (skiplock_run_latest) and counting the rest out; moves or deletes
-- up to `batch` old rows of the DEFAULT partitions; prunes kept runs that are no longer
-- latest; folds the counter rows of gone backends. Locks wait at most 2 s (a pass that
-- cannot get one fails and is tried again; partitions are made days ahead).
CREATE FUNCTION skiplock_maintain_history(at timestamptz, keep_ok interval, keep_failed interval,
                                          batch integer DEFAULT 10000, ahead_days integer DEFAULT 2)
RETURNS TABLE (created integer, dropped integer, runs_dropped bigint, default_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
    cls text;
    keep interval;
    today date := (at AT TIME ZONE 'UTC')::date;
    d date;
    leaf record;
    n bigint;
BEGIN
    created := 0; dropped := 0; runs_dropped := 0; default_rows := 0;
    IF NOT pg_try_advisory_xact_lock(hashtext('skiplock_maintain_history')) THEN
        RETURN NEXT;  -- another pass holds it: nothing done here
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '2s', true);
    FOREACH cls IN ARRAY ARRAY['ok', 'failed'] LOOP
        keep := CASE cls WHEN 'ok' THEN keep_ok ELSE keep_failed END;
        FOR d IN SELECT g::date FROM generate_series(today - 1, today + ahead_days, interval '1 day') g LOOP
            IF skiplock_history_partition(cls, d) THEN
                created := created + 1;
            END IF;
        END LOOP;
        FOR leaf IN
            SELECT c.relname AS name
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = ('skiplock_run_history_' || cls)::regclass
              AND c.relname ~ '_[0-9]{8}$'
              AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= at - keep
        LOOP
            EXECUTE format('INSERT INTO skiplock_run_latest SELECT h.* FROM %I h '
                           'JOIN skiplock_task_last_run t ON t.task_id = h.task_id AND t.run_id = h.id '
                           'ON CONFLICT (id) DO NOTHING', leaf.name);
            EXECUTE format('WITH gone AS (SELECT queue, state, count(*) AS n FROM %I h '
                           '  WHERE NOT EXISTS (SELECT 1 FROM skiplock_run_latest l WHERE l.id = h.id) '
                           '  GROUP BY queue, state), '
                           'counted AS (INSERT INTO skiplock_run_counts (queue, state, shard, n) '
                           '  SELECT queue, state, pg_backend_pid(), -n FROM gone ORDER BY queue, state '
                           '  ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n) '
                           'SELECT coalesce(sum(n), 0) FROM gone', leaf.name) INTO n;
            EXECUTE format('DROP TABLE %I', leaf.name);
            dropped := dropped + 1;
            runs_dropped := runs_dropped + n;
        END LOOP;
        -- Old rows of the DEFAULT partition, a batch at a time: a task's latest run moves to
        -- skiplock_run_latest (still history, so still counted), the rest are counted out.
        EXECUTE format(
            'WITH old AS (DELETE FROM %1$I h WHERE h.id = ANY(ARRAY('
            '    SELECT id FROM %1$I WHERE finished_at < $1 LIMIT $2)) RETURNING h.*), '
            'kept AS (INSERT INTO skiplock_run_latest SELECT old.* FROM old '
            '    JOIN skiplock_task_last_run t ON t.task_id = old.task_id AND t.run_id = old.id '
            '    ON CONFLICT (id) DO NOTHING RETURNING id), '
            'counted AS (INSERT INTO skiplock_run_counts (queue, state, shard, n) '
            '    SELECT queue, state, pg_backend_pid(), -count(*) FROM old '
            '    WHERE NOT EXISTS (SELECT 1 FROM kept WHERE kept.id = old.id) '
            '    GROUP BY queue, state ORDER BY queue, state '
            '    ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n) '
            'SELECT count(*) FROM old', 'skiplock_run_history_' || cls || '_default')
            INTO n USING at - keep, batch;
        default_rows := default_rows + n;
    END LOOP;
    -- Kept runs that a newer run has replaced as their task's latest.
    DELETE FROM skiplock_run_latest l
    WHERE l.id = ANY(ARRAY(
        SELECT k.id FROM skiplock_run_latest k
        WHERE NOT EXISTS (SELECT 1 FROM skiplock_task_last_run t WHERE t.task_id = k.task_id AND t.run_id = k.id)
        LIMIT batch));
    -- Counter rows of backends that have exited, summed into shard 0.
    WITH gone AS (
        DELETE FROM skiplock_run_counts c
        WHERE c.shard <> 0 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.shard)
        RETURNING queue, state, c.n
    )
    INSERT INTO skiplock_run_counts (queue, state, shard, n)
    SELECT queue, state, 0, sum(gone.n) FROM gone GROUP BY queue, state ORDER BY queue, state
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = skiplock_run_counts.n + EXCLUDED.n;
    WITH gone AS (
        DELETE FROM skiplock_task_counts c
        WHERE c.shard <> 0 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.shard)
        RETURNING status, c.n
    )
    INSERT INTO skiplock_task_counts (status, shard, n)
    SELECT status, 0, sum(gone.n) FROM gone GROUP BY status ORDER BY status
    ON CONFLICT (status, shard) DO UPDATE SET n = skiplock_task_counts.n + EXCLUDED.n;
    RETURN NEXT;
END $$;

-- Existing history moves over (into the DEFAULT partitions; maintenance gives recent days
-- their own partitions and retention deletes the old rows), and the counts start exact.
-- (DO blocks, not SELECTs: a migration prints nothing.)
DO $$
BEGIN
    PERFORM set_config('skiplock.moving', 'on', true);
    WITH gone AS (
        DELETE FROM skiplock_runs WHERE state IN ('succeeded', 'failed', 'cancelled', 'skipped')
        RETURNING id, task_id, attempt, state, type, queue, priority, scheduled_for, due_at, started_at,
                  coalesce(finished_at, created_at) AS finished_at, worker_id, coordinator_id, lease_token,
                  lease_expires_at, deadline_at, result, error, reason, created_at, seq
    )
    INSERT INTO skiplock_run_history SELECT * FROM gone;
    PERFORM set_config('skiplock.moving', 'off', true);
END $$;

INSERT INTO skiplock_run_counts (queue, state, shard, n)
SELECT queue, state, 0, count(*)
FROM (SELECT queue, state FROM skiplock_runs UNION ALL SELECT queue, state FROM skiplock_run_history) x
GROUP BY queue, state;
INSERT INTO skiplock_task_counts (status, shard, n)
SELECT status, 0, count(*) FROM skiplock_tasks GROUP BY status;

-- History of the last 30 days gets its daily partitions now (out of the DEFAULT ones). The
-- days are read first: a partition cannot be attached while a query of this session reads.
DO $$
DECLARE
    days text[];
    d text;
BEGIN
    days := ARRAY(SELECT DISTINCT (CASE WHEN state IN ('succeeded', 'skipped') THEN 'ok' ELSE 'failed' END)
                                  || ' ' || (finished_at AT TIME ZONE 'UTC')::date::text
                  FROM skiplock_run_history WHERE finished_at > now() - interval '30 days');
    FOREACH d IN ARRAY days LOOP
        PERFORM skiplock_history_partition(split_part(d, ' ', 1), split_part(d, ' ', 2)::date);
    END LOOP;
END $$;

-- Every run, live or ended, for reading by hand (and by tests): SELECT … FROM skiplock_all_runs.
CREATE VIEW skiplock_all_runs AS
    SELECT * FROM skiplock_runs
    UNION ALL SELECT * FROM skiplock_run_history
    UNION ALL SELECT * FROM skiplock_run_latest;
