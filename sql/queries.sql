-- All skiplock SQL, as named blocks. Code calls a statement through its function in
-- sql/statements.py. Time-dependent statements take "now" as a parameter so tests
-- move time instead of sleeping.
--
-- skiplock_runs holds live runs only (pending, running): a statement that ends a run sets
-- its state and the table's trigger moves it into skiplock_run_history (and counts it);
-- see sql/migrations/0006_history.sql. Reads of "all runs" read both.
--
-- Batched writes join a table to unnest($1, ...) and ALSO filter it by `id = ANY($1)`: on
-- young tables the planner's estimates are poor and, without that, it can pick a nested
-- loop over a sequential scan (seen: 1.5 s for 500 rows against 20,000 tasks). With it,
-- the lookup is an index or hashed scan whatever the statistics say.

-- name: insert_tasks
-- $1: jsonb array of task records, each with its first run's id, time and due time
-- (run_id, scheduled_for, due_at). Tasks whose idempotency key is already taken are
-- skipped, with their runs. One statement makes both (a run's task, inserted by the same
-- statement, satisfies its foreign key at the statement's end), and wakes coordinators with
-- the earliest due time, as insert_runs does.
WITH t AS (
    INSERT INTO skiplock_tasks (id, name, type, payload, queue, priority, run_at, cron, timezone,
                                catch_up, overlap, max_attempts, timeout_s, retry_backoff_s,
                                retry_backoff_max_s, retry_jitter, idempotency_key, request_hash,
                                concurrency_key, concurrency_limit, rate_limit, dedup_key, dedup_while,
                                dedup_on_duplicate, callbacks, created_at, updated_at)
    SELECT id, name, type, payload, queue, priority, run_at, cron, timezone, catch_up, overlap,
           max_attempts, timeout_s, retry_backoff_s, retry_backoff_max_s, retry_jitter,
           idempotency_key, request_hash, concurrency_key, concurrency_limit, rate_limit, dedup_key, dedup_while,
           dedup_on_duplicate, callbacks, $2, $2
    FROM jsonb_to_recordset($1::jsonb) AS t(
        id uuid, name text, type text, payload jsonb, queue text, priority integer,
        run_at timestamptz, cron text, timezone text, catch_up text, overlap text,
        max_attempts integer, timeout_s double precision, retry_backoff_s double precision,
        retry_backoff_max_s double precision, retry_jitter boolean, idempotency_key text,
        request_hash text, concurrency_key text, concurrency_limit integer, rate_limit text, dedup_key text,
        dedup_while text, dedup_on_duplicate text, callbacks jsonb)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, type, queue, priority, concurrency_key, concurrency_limit, rate_limit
), r AS (
    INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for,
                               due_at, reason, created_at, concurrency_key, concurrency_limit, rate_limit)
    SELECT x.run_id, t.id, 1, t.type, t.queue, t.priority, x.scheduled_for, x.due_at, 'schedule', $2,
           t.concurrency_key, t.concurrency_limit, t.rate_limit
    FROM t JOIN jsonb_to_recordset($1::jsonb) AS x(id uuid, run_id uuid, scheduled_for timestamptz,
                                                    due_at timestamptz) ON x.id = t.id
    RETURNING due_at
), woken AS (
    SELECT pg_notify('skiplock_wake', extract(epoch FROM min(due_at))::text) FROM r
    HAVING min(due_at) < 'infinity'
)
SELECT t.id, (SELECT count(*) FROM woken) AS woken FROM t;

-- name: tasks_by_idempotency_key
-- The tasks that already own these keys, with the fingerprint of the request that made them.
SELECT id, idempotency_key, request_hash FROM skiplock_tasks WHERE idempotency_key = ANY($1::text[]);

-- name: insert_runs
-- New pending runs (first runs, retries, cron slots), with their task's concurrency key
-- ($12/$13) and rate limit ($14), copied as type and queue are; wakes coordinators in the same
-- transaction with the earliest due time (unix seconds) as payload. With $11 (cron slots),
-- a slot that already ended (moved to the history, so the hot table's unique key no longer
-- sees it) is not made again; the history is searched from a day before the slot on, since
-- a run cannot end before it is due.
WITH ins AS (
    INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for,
                               due_at, reason, created_at, concurrency_key, concurrency_limit, rate_limit)
    SELECT r.id, r.task_id, r.attempt, r.type, r.queue, r.priority, r.scheduled_for, r.due_at, r.reason, $10,
           r.concurrency_key, r.concurrency_limit, r.rate_limit
    FROM unnest($1::uuid[], $2::uuid[], $3::integer[], $4::text[], $5::text[], $6::integer[],
                $7::timestamptz[], $8::timestamptz[], $9::text[], $12::text[], $13::integer[], $14::text[])
         AS r(id, task_id, attempt, type, queue, priority, scheduled_for, due_at, reason, concurrency_key,
              concurrency_limit, rate_limit)
    WHERE NOT $11::boolean
       OR NOT EXISTS (SELECT 1 FROM skiplock_run_history h
                      WHERE h.task_id = r.task_id AND h.scheduled_for = r.scheduled_for
                        AND h.attempt = r.attempt AND h.finished_at >= r.scheduled_for - interval '1 day')
    ON CONFLICT (task_id, scheduled_for, attempt) DO NOTHING
    RETURNING due_at
)
SELECT count(*) AS inserted,
       CASE WHEN min(due_at) < 'infinity'
            THEN pg_notify('skiplock_wake', extract(epoch FROM min(due_at))::text) END AS notified
FROM ins
HAVING count(*) > 0;

-- name: claim
-- Claim up to $4 runs due by $9 for the free slots listed in $5 (one worker id per slot, in
-- the order slots should be filled). One statement, any number of coordinators. $9 is a
-- little past now ($1): a run due within it is claimed early and its worker holds it until
-- its due time, so the claim's own cost (a fleet of cron slots) is not paid in lateness.
-- The update finds the picked rows by ctid (a TID scan, whatever the planner thinks of the
-- table): the rows are locked, so their ctid cannot change within the statement. A run with a
-- rate limit starts only on a token of its bucket, and one with a concurrency key only with
-- a slot of its key (see 0009_rate_limits_dedup.sql and 0008_concurrency.sql). `picked` in
-- each row says how many runs the claim locked: more than it returned means some were held
-- back by their limits, so the dispatcher claims again (the limits then look full and are
-- passed over).
WITH RECURSIVE levels AS (
    -- The priorities that pending runs of each type have, highest first: one probe of the
    -- claim index per priority (a loose index scan), so the walks below are each bounded by
    -- type, priority and due time, and read only the rows they return, whatever the backlog
    -- or the number of runs scheduled later. (One ANY over the types sorted every due run:
    -- 20 ms a claim at 20,000 due.)
    SELECT ty.type, (SELECT max(priority) FROM skiplock_runs
                     WHERE state = 'pending' AND type = ty.type) AS priority
    FROM unnest($2::text[]) AS ty(type)
    UNION ALL
    SELECT l.type, (SELECT max(priority) FROM skiplock_runs
                    WHERE state = 'pending' AND type = l.type AND priority < l.priority)
    FROM levels l WHERE l.priority IS NOT NULL
), picked AS (
    -- Each (type, priority) walk locks at most $4 runs; those past the claim's $4 (several
    -- types or priorities due at once) are unlocked at its commit.
    SELECT c.* FROM levels lv
    CROSS JOIN LATERAL (
        SELECT id, ctid, queue, concurrency_key AS ckey, concurrency_limit AS climit, rate_limit AS rlimit,
               priority, due_at
        FROM skiplock_runs
        WHERE state = 'pending'
          AND type = lv.type AND priority = lv.priority
          AND due_at <= $9
          AND (cardinality($3::text[]) = 0 OR queue = ANY($3::text[]))
          -- $10: the paused queues as this coordinator knows them (a constant, so the plan
          -- stays the claim's); `allowed` checks the table itself, so a pause is exact.
          AND queue <> ALL($10::text[])
          -- A key whose slots look taken, or a bucket without a token, is passed over, so it
          -- cannot crowd out other work. These are only filters: the guarantees are below.
          AND (concurrency_key IS NULL
               OR (SELECT count(*) FROM skiplock_concurrency_slots s
                   WHERE s.key = skiplock_runs.concurrency_key) < concurrency_limit)
          AND (rate_limit IS NULL
               OR EXISTS (SELECT 1 FROM skiplock_rate_limits l
                          WHERE l.name = skiplock_runs.rate_limit AND coalesce(l.paused_until <= $1, true)
                            AND least(l.burst, l.tokens + greatest(0, extract(epoch FROM $1 - l.refilled_at))
                                                          * l.per_second) >= 1))
        ORDER BY due_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE lv.priority IS NOT NULL
    ORDER BY c.priority DESC, c.due_at
    LIMIT $4
), allowed AS (
    SELECT * FROM picked WHERE queue <> ALL(ARRAY(SELECT queue FROM skiplock_queue_pauses))
), wanted AS (
    -- Each bucket the claim needs tokens of, locked in name order (claims never deadlock).
    SELECT l.name, w.n
    FROM skiplock_rate_limits l
    JOIN (SELECT rlimit, count(*) AS n FROM allowed WHERE rlimit IS NOT NULL GROUP BY rlimit) w ON w.rlimit = l.name
    ORDER BY l.name
    FOR UPDATE OF l
), tokens AS (
    -- The bucket refilled to now, then as many whole tokens taken as there are runs (or
    -- tokens). Computed from the row's latest version: a claim that waited for another's
    -- lock sees what that one left.
    UPDATE skiplock_rate_limits l
    SET granted = CASE WHEN l.paused_until > $1 THEN 0
                       ELSE least(w.n, floor(least(l.burst, l.tokens + greatest(0, extract(epoch FROM $1 - l.refilled_at))
                                                            * l.per_second)))::integer END,
        tokens = least(l.burst, l.tokens + greatest(0, extract(epoch FROM $1 - l.refilled_at)) * l.per_second)
                 - CASE WHEN l.paused_until > $1 THEN 0
                        ELSE least(w.n, floor(least(l.burst, l.tokens + greatest(0, extract(epoch FROM $1 - l.refilled_at))
                                                             * l.per_second))) END,
        refilled_at = greatest(l.refilled_at, $1)
    FROM wanted w
    WHERE l.name = w.name
    RETURNING l.name, l.granted
), admitted AS (
    -- The k-th run of a bucket in this claim starts if the bucket gave k tokens or more.
    SELECT a.* FROM (
        SELECT allowed.*, row_number() OVER (PARTITION BY rlimit ORDER BY priority DESC, due_at) AS r FROM allowed
    ) a LEFT JOIN tokens tk ON tk.name = a.rlimit
    WHERE a.rlimit IS NULL OR a.r <= tk.granted
), keyed AS (
    SELECT id, ckey, climit, row_number() OVER (PARTITION BY ckey ORDER BY priority DESC, due_at) AS k
    FROM admitted WHERE ckey IS NOT NULL
), offered AS (
    -- The k-th run of a key in this claim is offered the k-th slot number free as this
    -- snapshot sees it, never above the limit.
    SELECT keyed.id, keyed.ckey, f.slot
    FROM keyed
    CROSS JOIN LATERAL (
        SELECT g AS slot FROM generate_series(1, keyed.climit) g
        WHERE NOT EXISTS (SELECT 1 FROM skiplock_concurrency_slots s WHERE s.key = keyed.ckey AND s.slot = g)
        ORDER BY g OFFSET keyed.k - 1 LIMIT 1) f
), taken AS (
    -- Two claims offered one slot: the second waits for the first, then finds it taken and
    -- leaves its run pending. Runs without a key pay none of this.
    INSERT INTO skiplock_concurrency_slots (key, slot, run_id)
    SELECT ckey, slot, id FROM offered ORDER BY ckey, slot  -- one lock order: claims never deadlock
    ON CONFLICT DO NOTHING
    RETURNING run_id
), numbered AS (
    SELECT ctid, row_number() OVER () AS n FROM admitted
    WHERE ckey IS NULL OR id IN (SELECT run_id FROM taken)
)
UPDATE skiplock_runs r
SET state = 'running',
    worker_id = ($5::text[])[numbered.n],
    coordinator_id = $6,
    started_at = greatest($1, r.due_at),
    lease_token = gen_random_uuid(),
    lease_expires_at = $1 + make_interval(secs => $7),
    deadline_at = $1 + make_interval(secs => t.timeout_s + $8)
FROM numbered, skiplock_tasks t
WHERE r.ctid = numbered.ctid AND t.id = r.task_id
RETURNING r.id, r.lease_token, r.task_id, t.name AS task_name, r.concurrency_key, r.concurrency_limit,
          r.rate_limit, r.type, t.payload::text AS payload, r.due_at,
          r.attempt, t.max_attempts, t.timeout_s, r.scheduled_for, r.queue, r.priority,
          r.worker_id, r.reason, t.cron, t.timezone, t.catch_up, t.overlap, t.status AS task_status,
          t.callbacks, (SELECT count(*) FROM picked) AS picked;

-- name: already_applied
-- Of results that did not apply, those whose run already ended under the same token: a
-- worker re-sent them after a reconnect. The others are stale.
SELECT h.id
FROM skiplock_run_history h, unnest($1::uuid[], $2::uuid[]) AS x(id, token)
WHERE h.id = ANY($1::uuid[]) AND h.id = x.id AND h.lease_token = x.token;

-- name: cron_busy
-- For cron slots just claimed: does the task have another run going, or one waiting?
SELECT task_id,
       bool_or(state = 'running' AND NOT (id = ANY($2::uuid[]))) AS running,
       bool_or(state = 'pending' AND reason = 'queued') AS waiting
FROM skiplock_runs
WHERE task_id = ANY($1::uuid[]) AND state IN ('running', 'pending')
GROUP BY task_id;

-- name: skip_runs
-- Claimed cron slots that must not run (overlap, catch-up): recorded with the reason.
UPDATE skiplock_runs r
SET state = 'skipped', error = x.why, finished_at = $3, started_at = NULL, worker_id = NULL,
    coordinator_id = NULL, lease_token = NULL, lease_expires_at = NULL, deadline_at = NULL
FROM unnest($1::uuid[], $2::text[]) AS x(id, why)
WHERE r.id = ANY($1::uuid[]) AND r.id = x.id AND r.state = 'running';

-- name: queue_runs
-- overlap=queue, or a catch-up replay: the slot waits (pending, no due time) until the
-- current run ends. A catch-up slot keeps its reason, so it stays a replay.
UPDATE skiplock_runs
SET state = 'pending', reason = CASE WHEN reason = 'catch_up' THEN 'catch_up' ELSE 'queued' END,
    due_at = 'infinity', started_at = NULL, worker_id = NULL,
    coordinator_id = NULL, lease_token = NULL, lease_expires_at = NULL, deadline_at = NULL
WHERE id = ANY($1::uuid[]) AND state = 'running';

-- name: mark_catch_up
-- Claimed cron slots that run late on purpose (the catch-up policy let them): say so in reason.
UPDATE skiplock_runs SET reason = 'catch_up' WHERE id = ANY($1::uuid[]) AND state = 'running';

-- name: release_queued
-- A cron run ended: the task's earliest waiting slot (overlap=queue, or the next catch-up
-- replay) may start now. One at a time, so replays run one after the other, in order.
WITH waiting AS (
    SELECT DISTINCT ON (r.task_id) r.id
    FROM skiplock_runs r, skiplock_tasks t
    WHERE r.task_id = ANY($1::uuid[]) AND r.state = 'pending' AND r.reason IN ('queued', 'catch_up')
      AND r.due_at = 'infinity' AND t.id = r.task_id AND t.status = 'active'
      AND NOT EXISTS (SELECT 1 FROM skiplock_runs o WHERE o.task_id = r.task_id AND o.state = 'running')
    ORDER BY r.task_id, r.scheduled_for
)
UPDATE skiplock_runs r SET due_at = $2
FROM waiting
WHERE r.id = waiting.id AND r.state = 'pending'
RETURNING pg_notify('skiplock_wake', extract(epoch FROM $2::timestamptz)::text);

-- name: skip_paused_slot
-- On resume: the slot that came due while paused is recorded as skipped, with why.
UPDATE skiplock_runs
SET state = 'skipped', finished_at = $2, error = $3
WHERE task_id = $1 AND state = 'pending' AND reason IN ('schedule', 'catch_up') AND scheduled_for <= $2
RETURNING scheduled_for;

-- name: settle_inactive_runs
-- Claimed runs whose task is no longer active (a run inserted while the task was being
-- cancelled or paused, which that command's snapshot could not see): a finished task's run
-- ends `cancelled`; a paused or quarantined task's waits again, as its other runs do.
UPDATE skiplock_runs r
SET state = CASE WHEN t.status IN ('paused', 'quarantined') THEN 'pending' ELSE 'cancelled' END,
    due_at = CASE WHEN t.status IN ('paused', 'quarantined') THEN 'infinity' ELSE r.due_at END,
    finished_at = CASE WHEN t.status IN ('paused', 'quarantined') THEN NULL ELSE $2::timestamptz END,
    error = CASE WHEN t.status IN ('paused', 'quarantined') THEN NULL ELSE 'task ' || t.status END,
    started_at = NULL, worker_id = NULL, coordinator_id = NULL, lease_token = NULL,
    lease_expires_at = NULL, deadline_at = NULL
FROM skiplock_tasks t
WHERE r.id = ANY($1::uuid[]) AND r.state = 'running' AND t.id = r.task_id AND t.status <> 'active';

-- name: unclaim_runs
-- Runs claimed for a worker that disconnected before they could be sent: back to pending,
-- no attempt used.
UPDATE skiplock_runs
SET state = 'pending', started_at = NULL, worker_id = NULL, coordinator_id = NULL,
    lease_token = NULL, lease_expires_at = NULL, deadline_at = NULL
WHERE id = ANY($1::uuid[]) AND state = 'running';

-- name: next_due
-- For the wake-up timer: the earliest pending run due after $1 that these workers could take
-- (a paused queue's runs, $4 as this coordinator knows them, are not: resume wakes them),
-- and the earliest time after $5 (now) at which an empty or paused bucket that holds back a
-- due run of theirs has a token again (`token_at`; the claim refills to the instant, so the
-- timer is set for it exactly, not ahead).
SELECT (SELECT due_at
        FROM skiplock_runs
        WHERE state = 'pending' AND due_at > $1 AND due_at < 'infinity'
          AND type = ANY($2::text[])
          AND (cardinality($3::text[]) = 0 OR queue = ANY($3::text[]))
          AND queue <> ALL($4::text[])
        ORDER BY due_at
        LIMIT 1) AS due_at,
       (SELECT min(w.at)
        FROM skiplock_rate_limits l,
             LATERAL (SELECT greatest(coalesce(l.paused_until, '-infinity'),
                                      l.refilled_at + make_interval(secs => greatest(0, 1 - l.tokens) / l.per_second))
                             AS at) w
        WHERE w.at > $5
          AND EXISTS (SELECT 1 FROM skiplock_runs r
                      WHERE r.rate_limit = l.name AND r.state = 'pending' AND r.due_at <= $1
                        AND r.type = ANY($2::text[])
                        AND (cardinality($3::text[]) = 0 OR r.queue = ANY($3::text[]))
                        AND r.queue <> ALL($4::text[]))) AS token_at;

-- name: finish_runs
-- Apply worker results. A row counts only while the run is `running` under the same lease
-- token and held by the worker reporting it (fencing); the rest are not returned. An ended
-- run leaves the queue for the history in this statement: deleted and inserted (the
-- triggers count both and record the task's latest run).
WITH res AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::boolean[], $8::double precision[], $9::boolean[],
                         $10::text[])
        AS x(id, token, state, result, error, finished_at, retryable, retry_after_s, released, worker_id)
), done AS (
    DELETE FROM skiplock_runs r
    USING res
    WHERE r.id = ANY($1::uuid[]) AND r.id = res.id AND r.lease_token = res.token AND r.state = 'running'
      AND r.worker_id = res.worker_id
    RETURNING r.id, r.task_id, r.attempt, res.state, r.type, r.queue, r.priority, r.scheduled_for, r.due_at,
              r.started_at, res.finished_at, r.worker_id, r.coordinator_id, r.lease_token, r.deadline_at,
              res.result, res.error, r.reason, r.created_at, r.seq, res.retryable, res.retry_after_s, res.released,
              r.concurrency_key, r.concurrency_limit, r.rate_limit
), moved AS (
    INSERT INTO skiplock_run_history (id, task_id, attempt, state, type, queue, priority, scheduled_for, due_at,
                                      started_at, finished_at, worker_id, coordinator_id, lease_token,
                                      lease_expires_at, deadline_at, result, error, reason, created_at, seq,
                                      concurrency_key, concurrency_limit, rate_limit)
    SELECT id, task_id, attempt, state, type, queue, priority, scheduled_for, due_at, started_at, finished_at,
           worker_id, coordinator_id, lease_token, NULL, deadline_at, result::jsonb, error, reason, created_at, seq,
           concurrency_key, concurrency_limit, rate_limit
    FROM done
)
SELECT d.id, d.task_id, d.state, d.attempt, d.scheduled_for, d.type, d.queue, d.priority,
       d.retryable, d.retry_after_s, d.released, false AS lost, t.max_attempts, t.cron,
       t.status AS task_status, t.retry_backoff_s, t.retry_backoff_max_s, t.retry_jitter,
       d.concurrency_key, d.concurrency_limit, d.rate_limit,
       -- For callbacks only (NULL for tasks without): what an event tells, and the task's
       -- previous ended run (read before this statement's trigger records this one).
       t.callbacks, t.name AS task_name,
       CASE WHEN t.callbacks IS NOT NULL THEN d.result END AS result,
       CASE WHEN t.callbacks IS NOT NULL THEN d.error END AS error, d.finished_at,
       CASE WHEN t.callbacks IS NOT NULL
            THEN (SELECT lr.state FROM skiplock_task_last_run lr WHERE lr.task_id = d.task_id) END AS previous_state
FROM done d JOIN skiplock_tasks t ON t.id = d.task_id;

-- name: reap_expired
-- Fail running runs whose lease ran out (worker lost) or whose deadline passed (no result
-- within timeout_s). SKIP LOCKED: safe with any number of coordinators. `lost` is decided
-- here, from the lease, and returned as a boolean (never read back out of the error text).
WITH gone AS (
    SELECT id, (lease_expires_at < $1) AS lost
    FROM skiplock_runs
    WHERE state = 'running' AND (lease_expires_at < $1 OR deadline_at < $1)
    ORDER BY lease_expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE skiplock_runs r
SET state = 'failed',
    finished_at = $1,
    lease_expires_at = NULL,
    lease_token = NULL,  -- a late result is then told apart from a re-sent one
    error = CASE WHEN gone.lost
                 THEN 'worker lost: no heartbeat from worker ' || coalesce(r.worker_id, '?')
                      || ' before its lease expired'
                 ELSE 'timed out: no result from the worker within timeout_s' END
FROM gone, skiplock_tasks t
WHERE r.id = gone.id AND t.id = r.task_id
RETURNING r.id, r.task_id, r.state, r.attempt, r.scheduled_for, r.type, r.queue, r.priority,
          true AS retryable, 0::double precision AS retry_after_s, false AS released,
          gone.lost, t.max_attempts, t.cron,
          t.status AS task_status, t.retry_backoff_s, t.retry_backoff_max_s, t.retry_jitter,
          r.concurrency_key, r.concurrency_limit, r.rate_limit,
          t.callbacks, t.name AS task_name, NULL::text AS result, r.error, r.finished_at,
          CASE WHEN t.callbacks IS NOT NULL
               THEN (SELECT lr.state FROM skiplock_task_last_run lr WHERE lr.task_id = r.task_id) END AS previous_state;

-- name: count_lost_runs
-- A run lost with its worker counts against its task; past the limit the task is parked.
UPDATE skiplock_tasks
SET lost_runs = lost_runs + x.n,
    status = CASE WHEN status = 'active' AND lost_runs + x.n >= $3 THEN 'quarantined' ELSE status END,
    updated_at = $4
FROM unnest($1::uuid[], $2::integer[]) AS x(id, n)
WHERE skiplock_tasks.id = ANY($1::uuid[]) AND skiplock_tasks.id = x.id
RETURNING skiplock_tasks.id, skiplock_tasks.status;

-- name: finish_tasks
-- One-off tasks whose last run ended with status $2 (one statement per status, so no join:
-- see the note at the top). A pending retry or trigger keeps the task going; a task paused
-- while its run was going has nothing left to pause and ends too.
UPDATE skiplock_tasks
SET status = $2, updated_at = $3
WHERE id = ANY($1::uuid[]) AND status IN ('active', 'paused') AND cron IS NULL
  -- OFFSET 0 keeps this a probe of the runs index per task: pulled up into an anti-join, the
  -- planner read every pending run instead (10 ms a call at 20,000 pending).
  AND NOT EXISTS (SELECT 1 FROM skiplock_runs r
                  WHERE r.task_id = skiplock_tasks.id AND r.state IN ('pending', 'running') OFFSET 0);

-- name: hold_pending_runs
-- A quarantined task's pending runs wait, as a paused task's do, until it is resumed.
UPDATE skiplock_runs SET due_at = 'infinity'
WHERE task_id = ANY($1::uuid[]) AND state = 'pending';

-- name: heartbeats
-- Heartbeats of many workers in one statement (and a worker's hello, which keeps the runs it
-- still executes after a reconnect): mark them alive ($1-$3, one entry per worker) and
-- extend the leases they report ($4-$6, one entry per run, with the worker that must hold
-- it). Returns the runs still held, with their worker.
WITH alive AS (
    UPDATE skiplock_workers w
    SET last_heartbeat_at = $7, running = b.running, draining = b.draining,
        coordinator_id = $9, disconnected_at = NULL
    FROM unnest($1::text[], $2::integer[], $3::boolean[]) AS b(id, running, draining)
    WHERE w.id = ANY($1::text[]) AND w.id = b.id
)
UPDATE skiplock_runs r
SET lease_expires_at = $7 + make_interval(secs => $8), coordinator_id = $9
FROM unnest($4::uuid[], $5::uuid[], $6::text[]) AS h(id, token, worker_id)
WHERE r.id = ANY($4::uuid[]) AND r.id = h.id AND r.lease_token = h.token
  AND r.worker_id = h.worker_id AND r.state = 'running'
RETURNING r.id, r.worker_id;

-- name: upsert_worker
-- A worker's hello: its record (types, queues, slots) on the coordinator holding its stream.
INSERT INTO skiplock_workers (id, name, host, types, queues, slots, running, coordinator_id,
                              connected_at, last_heartbeat_at, disconnected_at, draining)
VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $8, NULL, false)
ON CONFLICT (id) DO UPDATE
SET name = EXCLUDED.name, host = EXCLUDED.host, types = EXCLUDED.types,
    queues = EXCLUDED.queues, slots = EXCLUDED.slots, coordinator_id = EXCLUDED.coordinator_id,
    last_heartbeat_at = EXCLUDED.last_heartbeat_at, disconnected_at = NULL, draining = false;

-- name: worker_disconnected
-- The stream of a worker ended on this coordinator (not if it reconnected elsewhere meanwhile).
UPDATE skiplock_workers SET disconnected_at = $3
WHERE id = $1 AND coordinator_id = $2 AND disconnected_at IS NULL;

-- name: drain_worker
-- An operator drains ($2 true) or undrains a connected worker: recorded at once for reads,
-- and told to the coordinator holding its stream (it sends the worker the Drain message).
UPDATE skiplock_workers
SET draining = $2::boolean
WHERE id = $1 AND disconnected_at IS NULL AND last_heartbeat_at > $3
RETURNING id, name, host, types, queues, slots, running, coordinator_id, connected_at, last_heartbeat_at,
          draining, pg_notify('skiplock_drain', json_build_object('worker_id', id, 'drain', $2::boolean)::text);

-- name: list_workers
-- Connected workers: no disconnect recorded and a heartbeat within the lease ($1: the cutoff).
SELECT id, name, host, types, queues, slots, running, coordinator_id, connected_at,
       last_heartbeat_at, draining
FROM skiplock_workers
WHERE disconnected_at IS NULL AND last_heartbeat_at > $1
ORDER BY connected_at, id;


-- name: get_tasks
-- Tasks by id, with what their view derives: the next finite due time, whether a run is
-- going, and the earliest pending run (for `waiting`).
SELECT t.*,
       (SELECT min(due_at) FROM skiplock_runs p
         WHERE p.task_id = t.id AND p.state = 'pending' AND p.due_at < 'infinity') AS next_due,
       EXISTS (SELECT 1 FROM skiplock_runs q
                WHERE q.task_id = t.id AND q.state = 'running') AS has_running,
       pr.pending_due, pr.pending_reason,
       lr.run_id AS last_run_id, lr.finished_at AS last_run_finished_at, lr.state AS last_run_state
FROM skiplock_tasks t
LEFT JOIN LATERAL (SELECT p.due_at AS pending_due, p.reason AS pending_reason FROM skiplock_runs p
                   WHERE p.task_id = t.id AND p.state = 'pending' ORDER BY p.due_at LIMIT 1) pr ON true
LEFT JOIN skiplock_task_last_run lr ON lr.task_id = t.id
WHERE t.id = ANY($1::uuid[]);

-- name: list_tasks
-- Newest first; keyset paging on (created_at, id). $1/$2: cursor (or NULL), filters after
-- ($9/$10: created at or after, and before).
-- The page's ids are picked first from the index alone ((status|type|queue, created_at, id),
-- an index-only scan: the planner would otherwise weigh a walk of the created_at index that
-- filters rows against heap reads of the filter index and, when the matches are old, walk a
-- million rows), then the page's rows are read by id. The name prefix is a range of the
-- C-collated name index ($5 || U+10FFFF bounds it). `running` ($7 true) reads the tasks of the
-- running runs, which are as many as the busy slots; `scheduled` ($7 false) reads active
-- tasks newest first and skips the few that run.
WITH page AS (
    SELECT t.id, t.created_at
    FROM skiplock_tasks t
    WHERE ($1::timestamptz IS NULL OR (t.created_at, t.id) < ($1, $2::uuid))
      AND ($3::text IS NULL OR t.type = $3)
      AND ($4::text IS NULL OR t.queue = $4)
      AND ($5::text IS NULL OR (t.name COLLATE "C" >= $5 AND t.name COLLATE "C" < $5 || chr(1114111)))
      -- one status is compared as a scalar, so the (status, created_at, id) index gives the order
      AND ($6::text[] IS NULL OR cardinality($6::text[]) = 1 OR t.status = ANY($6::text[]))
      AND ($6::text[] IS NULL OR cardinality($6::text[]) <> 1 OR t.status = ($6::text[])[1])
      AND ($7::boolean IS NOT TRUE
           OR t.id = ANY(ARRAY(SELECT q.task_id FROM skiplock_runs q WHERE q.state = 'running')))
      AND ($7::boolean IS NOT FALSE OR NOT EXISTS (SELECT 1 FROM skiplock_runs q
                                                   WHERE q.task_id = t.id AND q.state = 'running'))
      AND ($9::timestamptz IS NULL OR t.created_at >= $9) AND ($10::timestamptz IS NULL OR t.created_at < $10)
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT $8
)
SELECT t.*,
       (SELECT min(due_at) FROM skiplock_runs p
         WHERE p.task_id = t.id AND p.state = 'pending' AND p.due_at < 'infinity') AS next_due,
       EXISTS (SELECT 1 FROM skiplock_runs q
                WHERE q.task_id = t.id AND q.state = 'running') AS has_running,
       pr.pending_due, pr.pending_reason,
       lr.run_id AS last_run_id, lr.finished_at AS last_run_finished_at, lr.state AS last_run_state
FROM page
JOIN skiplock_tasks t ON t.id = page.id
LEFT JOIN LATERAL (SELECT p.due_at AS pending_due, p.reason AS pending_reason FROM skiplock_runs p
                   WHERE p.task_id = t.id AND p.state = 'pending' ORDER BY p.due_at LIMIT 1) pr ON true
LEFT JOIN skiplock_task_last_run lr ON lr.task_id = t.id
ORDER BY page.created_at DESC, page.id DESC;

-- name: last_runs
-- The latest run of each task, for the task views: a live one if it has one, else the ended
-- run the task names ($2-$4: its id, finished_at and state, which pick its one partition).
SELECT DISTINCT ON (task_id) *
FROM (
    SELECT * FROM skiplock_runs WHERE task_id = ANY($1::uuid[])
    UNION ALL
    SELECT h.* FROM unnest($2::uuid[], $3::timestamptz[], $4::text[]) AS x(id, finished_at, state)
    CROSS JOIN LATERAL (SELECT * FROM skiplock_run_history h
                        WHERE h.id = x.id AND h.finished_at = x.finished_at AND h.state = x.state
                        UNION ALL
                        SELECT * FROM skiplock_run_latest l WHERE l.id = x.id
                        LIMIT 1) h
) r
ORDER BY task_id, seq DESC;

-- name: get_run
-- One run, live or ended, with its task's status (for `waiting`).
SELECT r.*, t.status AS task_status
FROM (SELECT * FROM skiplock_runs WHERE id = $1
      UNION ALL SELECT * FROM skiplock_run_history WHERE id = $1
      UNION ALL SELECT * FROM skiplock_run_latest WHERE id = $1
      LIMIT 1) r
JOIN skiplock_tasks t ON t.id = r.task_id;

-- name: list_runs
-- Newest first; keyset paging on (created_at, id), filters after ($8/$9: created at or after,
-- and before); with each run's task status.
-- Live runs, history and the kept latest runs are merged newest first, each read through
-- its (created_at, id) or filter index, so a page costs the same at any history size.
SELECT r.*, t.status AS task_status
FROM (
    (SELECT * FROM skiplock_runs r
     WHERE ($1::timestamptz IS NULL OR (r.created_at, r.id) < ($1, $2::uuid))
       AND ($3::text IS NULL OR r.state = $3) AND ($3::text IS NULL OR $3 IN ('pending', 'running'))
       AND ($4::text IS NULL OR (r.type = $4 AND r.reason IS NOT NULL))  -- (skiplock_runs_type)
       AND ($5::uuid IS NULL OR r.task_id = $5)
       -- only a running run has a worker: read the running ones (as many as busy slots)
       AND ($6::text IS NULL OR (r.state = 'running' AND r.worker_id = $6))
       AND ($8::timestamptz IS NULL OR r.created_at >= $8) AND ($9::timestamptz IS NULL OR r.created_at < $9)
     ORDER BY r.created_at DESC, r.id DESC LIMIT $7)
    UNION ALL
    (SELECT * FROM skiplock_run_history r
     WHERE ($1::timestamptz IS NULL OR (r.created_at, r.id) < ($1, $2::uuid))
       AND ($3::text IS NULL OR r.state = $3) AND ($4::text IS NULL OR r.type = $4)
       AND ($5::uuid IS NULL OR r.task_id = $5) AND ($6::text IS NULL OR r.worker_id = $6)
       AND ($8::timestamptz IS NULL OR r.created_at >= $8) AND ($9::timestamptz IS NULL OR r.created_at < $9)
     ORDER BY r.created_at DESC, r.id DESC LIMIT $7)
    UNION ALL
    (SELECT * FROM skiplock_run_latest r
     WHERE ($1::timestamptz IS NULL OR (r.created_at, r.id) < ($1, $2::uuid))
       AND ($3::text IS NULL OR r.state = $3) AND ($4::text IS NULL OR r.type = $4)
       AND ($5::uuid IS NULL OR r.task_id = $5) AND ($6::text IS NULL OR r.worker_id = $6)
       AND ($8::timestamptz IS NULL OR r.created_at >= $8) AND ($9::timestamptz IS NULL OR r.created_at < $9)
     ORDER BY r.created_at DESC, r.id DESC LIMIT $7)
) r
JOIN skiplock_tasks t ON t.id = r.task_id
ORDER BY r.created_at DESC, r.id DESC
LIMIT $7;

-- name: lock_task
-- The API's task commands serialise on the task row. FOR NO KEY UPDATE, not FOR UPDATE: a
-- claim that holds a cron slot inserts the next slot, whose foreign-key check takes FOR KEY
-- SHARE on this row; FOR UPDATE would block it while the cancel waits for that slot's row
-- lock, a deadlock. A run inserted meanwhile for a task that stops being active is settled
-- by the claim (settle_inactive_runs).
SELECT * FROM skiplock_tasks WHERE id = $1 FOR NO KEY UPDATE;

-- name: cancel_task
-- Cancel: pending runs end `cancelled`; running runs are returned so their coordinators
-- can stop them (told by NOTIFY in the same transaction).
WITH t AS (
    UPDATE skiplock_tasks SET status = 'cancelled', updated_at = $2
    WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled')
    RETURNING id
), pend AS (
    UPDATE skiplock_runs SET state = 'cancelled', finished_at = $2, error = 'task cancelled'
    WHERE task_id = $1 AND state = 'pending' AND EXISTS (SELECT 1 FROM t)
    RETURNING id
)
SELECT r.id, r.worker_id, r.coordinator_id,
       pg_notify('skiplock_cancel', json_build_object('run_id', r.id, 'worker_id', r.worker_id,
                                                      'reason', 'task cancelled')::text)
FROM skiplock_runs r
WHERE r.task_id = $1 AND r.state = 'running' AND EXISTS (SELECT 1 FROM t);

-- name: pause_task
-- Paused: pending runs wait with an infinite due time until resumed.
WITH t AS (
    UPDATE skiplock_tasks SET status = 'paused', updated_at = $2
    WHERE id = $1 AND status = 'active'
    RETURNING id
)
UPDATE skiplock_runs SET due_at = 'infinity'
WHERE task_id = $1 AND state = 'pending' AND EXISTS (SELECT 1 FROM t);

-- name: resume_task
-- Resume a paused or quarantined task: its pending runs are due again (not before their slot).
WITH t AS (
    UPDATE skiplock_tasks SET status = 'active', updated_at = $2, lost_runs = 0
    WHERE id = $1 AND status IN ('paused', 'quarantined')
    RETURNING id
)
UPDATE skiplock_runs SET due_at = greatest(scheduled_for, $2)
WHERE task_id = $1 AND state = 'pending' AND EXISTS (SELECT 1 FROM t)
RETURNING id, pg_notify('skiplock_wake', extract(epoch FROM due_at)::text);

-- name: runs_by_state
-- Runs by state, live and retained history, from the kept counts.
SELECT state, sum(n)::bigint AS count FROM skiplock_run_counts GROUP BY state HAVING sum(n) <> 0;

-- name: due_backlog
-- Admin ClusterStatus: pending runs already due.
SELECT count(*) FROM skiplock_runs WHERE state = 'pending' AND due_at <= $1;

-- name: connected_worker_count
-- Admin ClusterStatus: workers with a heartbeat within the lease.
SELECT count(*) FROM skiplock_workers WHERE disconnected_at IS NULL AND last_heartbeat_at > $1;

-- name: patch_task
-- $2: the validated changes as a JSON object; absent keys keep their value.
UPDATE skiplock_tasks SET
    name = CASE WHEN $2::jsonb ? 'name' THEN $2->>'name' ELSE name END,
    payload = CASE WHEN $2::jsonb ? 'payload' THEN $2->'payload' ELSE payload END,
    queue = CASE WHEN $2::jsonb ? 'queue' THEN $2->>'queue' ELSE queue END,
    priority = CASE WHEN $2::jsonb ? 'priority' THEN ($2->>'priority')::integer ELSE priority END,
    run_at = CASE WHEN $2::jsonb ? 'run_at' THEN ($2->>'run_at')::timestamptz ELSE run_at END,
    cron = CASE WHEN $2::jsonb ? 'cron' THEN $2->>'cron' ELSE cron END,
    timezone = CASE WHEN $2::jsonb ? 'timezone' THEN $2->>'timezone' ELSE timezone END,
    catch_up = CASE WHEN $2::jsonb ? 'catch_up' THEN $2->>'catch_up' ELSE catch_up END,
    overlap = CASE WHEN $2::jsonb ? 'overlap' THEN $2->>'overlap' ELSE overlap END,
    max_attempts = CASE WHEN $2::jsonb ? 'max_attempts' THEN ($2->>'max_attempts')::integer ELSE max_attempts END,
    timeout_s = CASE WHEN $2::jsonb ? 'timeout_s' THEN ($2->>'timeout_s')::double precision ELSE timeout_s END,
    retry_backoff_s = CASE WHEN $2::jsonb ? 'retry_backoff_s' THEN ($2->>'retry_backoff_s')::double precision ELSE retry_backoff_s END,
    retry_backoff_max_s = CASE WHEN $2::jsonb ? 'retry_backoff_max_s' THEN ($2->>'retry_backoff_max_s')::double precision ELSE retry_backoff_max_s END,
    retry_jitter = CASE WHEN $2::jsonb ? 'retry_jitter' THEN ($2->>'retry_jitter')::boolean ELSE retry_jitter END,
    concurrency_key = CASE WHEN $2::jsonb ? 'concurrency' THEN $2->'concurrency'->>'key' ELSE concurrency_key END,
    concurrency_limit = CASE WHEN $2::jsonb ? 'concurrency' THEN ($2->'concurrency'->>'limit')::integer
                             ELSE concurrency_limit END,
    rate_limit = CASE WHEN $2::jsonb ? 'rate_limit' THEN $2->>'rate_limit' ELSE rate_limit END,
    dedup_key = CASE WHEN $2::jsonb ? 'dedup' THEN $2->'dedup'->>'key' ELSE dedup_key END,
    dedup_while = CASE WHEN $2::jsonb ? 'dedup' THEN $2->'dedup'->>'while' ELSE dedup_while END,
    dedup_on_duplicate = CASE WHEN $2::jsonb ? 'dedup' THEN $2->'dedup'->>'on_duplicate' ELSE dedup_on_duplicate END,
    callbacks = CASE WHEN $2::jsonb ? 'callbacks' THEN nullif($2->'callbacks', 'null'::jsonb) ELSE callbacks END,
    updated_at = $3
WHERE id = $1
RETURNING *;

-- name: repoint_pending_runs
-- Queue, priority, the concurrency key and the rate limit are copied onto runs for the
-- claim; keep pending ones in step.
UPDATE skiplock_runs r SET queue = t.queue, priority = t.priority,
    concurrency_key = t.concurrency_key, concurrency_limit = t.concurrency_limit, rate_limit = t.rate_limit
FROM skiplock_tasks t
WHERE r.task_id = $1 AND t.id = $1 AND r.state = 'pending';

-- name: drop_pending_slots
-- A changed cron re-plans: the pending slot of the old schedule goes.
DELETE FROM skiplock_runs
WHERE task_id = $1 AND state = 'pending' AND reason IN ('schedule', 'catch_up');

-- name: move_pending_run
-- A one-off task's run_at changed: its pending run moves (a paused one keeps waiting).
UPDATE skiplock_runs SET scheduled_for = $2::timestamptz,
    due_at = CASE WHEN due_at = 'infinity' THEN due_at ELSE greatest($2::timestamptz, $3::timestamptz) END
WHERE task_id = $1 AND state = 'pending' AND reason = 'schedule'
RETURNING pg_notify('skiplock_wake', extract(epoch FROM due_at)::text);

-- name: counts
-- Runs by queue and state (live and retained history) and tasks by stored status, from the
-- kept counters; and the running tasks (from the live runs), to split `active` into the
-- derived `scheduled` and `running`.
SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object('queue', queue, 'state', state, 'n', n)), '[]')
          FROM (SELECT queue, state, sum(n) AS n FROM skiplock_run_counts
                GROUP BY queue, state HAVING sum(n) <> 0) r) AS runs,
       (SELECT coalesce(jsonb_object_agg(status, n), '{}')
          FROM (SELECT status, sum(n) AS n FROM skiplock_task_counts
                GROUP BY status HAVING sum(n) <> 0) s) AS tasks,
       (SELECT count(DISTINCT q.task_id) FROM skiplock_runs q JOIN skiplock_tasks t ON t.id = q.task_id
         WHERE q.state = 'running' AND t.status = 'active') AS running_tasks,
       (SELECT count(*) FROM skiplock_runs WHERE state = 'pending' AND due_at <= $1) AS due_backlog;

-- name: delete_old_workers
-- Retention: workers gone for longer than $1's cutoff.
DELETE FROM skiplock_workers WHERE coalesce(disconnected_at, last_heartbeat_at) < $1;

-- name: maintain_history
-- One pass of history maintenance (see skiplock_maintain_history in 0006_history.sql):
-- partitions made ahead and dropped behind per class retention, old rows of the DEFAULT
-- partitions, stale kept runs, counter rows of gone backends.
SELECT * FROM skiplock_maintain_history($1, make_interval(secs => $2), make_interval(secs => $3), $4);

-- name: pause_queue
-- An operator pauses a queue: its pending runs are not claimed until it is resumed.
WITH p AS (
    INSERT INTO skiplock_queue_pauses (queue, paused_at) VALUES ($1, $2)
    ON CONFLICT (queue) DO NOTHING
    RETURNING queue
)
SELECT pg_notify('skiplock_queues', queue) FROM p;

-- name: resume_queue
-- An operator resumes a queue: its due runs may be claimed now, so coordinators are woken.
WITH gone AS (DELETE FROM skiplock_queue_pauses WHERE queue = $1 RETURNING queue)
SELECT pg_notify('skiplock_queues', queue), pg_notify('skiplock_wake', extract(epoch FROM $2::timestamptz)::text)
FROM gone;

-- name: paused_queues
-- Every paused queue, with when it was paused.
SELECT queue, paused_at FROM skiplock_queue_pauses ORDER BY queue;

-- name: queue_backlogs
-- Per queue: pending runs already due and the oldest due time among them. Read from the
-- claim's partial index, so it costs the due backlog, not the history or the future.
SELECT queue, count(*) AS due_backlog, min(due_at) AS oldest_due_at
FROM skiplock_runs
WHERE state = 'pending' AND due_at <= $1
GROUP BY queue;

-- name: concurrency_holders
-- Per concurrency key: the runs holding its slots (for `waiting`).
SELECT key, array_agg(run_id ORDER BY slot) AS runs
FROM skiplock_concurrency_slots
WHERE key = ANY($1::text[])
GROUP BY key;

-- name: fleet
-- What `waiting` needs of the cluster, in one round trip: each connected worker's types,
-- queues and free slots ($1: the heartbeat cutoff), and the paused queues.
SELECT coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'types', types, 'queues', queues,
                    'free', CASE WHEN draining THEN 0 ELSE greatest(0, slots - running) END))
                 FROM skiplock_workers WHERE disconnected_at IS NULL AND last_heartbeat_at > $1), '[]') AS takers,
       ARRAY(SELECT queue FROM skiplock_queue_pauses ORDER BY queue) AS paused;

-- name: put_rate_limit
-- Create or change a rate limit. A new bucket starts full; a changed one keeps its tokens
-- (capped at the new burst) and its pause.
INSERT INTO skiplock_rate_limits AS l (name, per_second, burst, tokens, refilled_at, created_at, updated_at)
VALUES ($1, $2::double precision, $3::integer, $3::integer, $4, $4, $4)
ON CONFLICT (name) DO UPDATE
SET per_second = EXCLUDED.per_second, burst = EXCLUDED.burst,
    tokens = least(EXCLUDED.burst, l.tokens + greatest(0, extract(epoch FROM $4 - l.refilled_at)) * l.per_second),
    refilled_at = greatest(l.refilled_at, $4), updated_at = $4
RETURNING name, per_second, burst, tokens, refilled_at, paused_until, created_at, updated_at;

-- name: rate_limits
-- Rate limits, all ($1 null) or those named in $1.
SELECT name, per_second, burst, tokens, refilled_at, paused_until, created_at, updated_at
FROM skiplock_rate_limits
WHERE $1::text[] IS NULL OR name = ANY($1::text[])
ORDER BY name;

-- name: lock_rate_limits
-- Creates and PATCHes that name rate limits hold them (KEY SHARE) until commit, so a
-- DELETE cannot slip in between the check that they exist and the task's insert.
SELECT name FROM skiplock_rate_limits WHERE name = ANY($1::text[]) ORDER BY name FOR KEY SHARE;

-- name: delete_rate_limit
-- Delete a rate limit unless a task that is not finished names it. Returns `deleted`
-- (false: no such rate limit) and, when refused, up to 5 of the tasks using it.
WITH target AS (
    SELECT name FROM skiplock_rate_limits WHERE name = $1 FOR UPDATE
), users AS (
    SELECT t.id FROM skiplock_tasks t, target
    WHERE t.rate_limit = target.name AND t.status IN ('active', 'paused', 'quarantined')
    LIMIT 5
), gone AS (
    DELETE FROM skiplock_rate_limits l USING target
    WHERE l.name = target.name AND NOT EXISTS (SELECT 1 FROM users)
    RETURNING l.name
)
SELECT EXISTS (SELECT 1 FROM target) AS found, EXISTS (SELECT 1 FROM gone) AS deleted,
       ARRAY(SELECT id FROM users) AS users;

-- name: pause_rate_limits
-- A target answered 429/503 with Retry-After: no run of that bucket starts before `until`
-- (a later pause wins over an earlier one).
UPDATE skiplock_rate_limits l
SET paused_until = greatest(coalesce(l.paused_until, '-infinity'), x.until), updated_at = $3
FROM unnest($1::text[], $2::timestamptz[]) AS x(name, until)
WHERE l.name = ANY($1::text[]) AND l.name = x.name;

-- name: dedup_lock
-- Creates with dedup keys serialise per key (in key order, so never deadlock) until commit.
SELECT count(pg_advisory_xact_lock(hashtextextended('skiplock.dedup:' || k, 0)))
FROM (SELECT DISTINCT k FROM unnest($1::text[]) k ORDER BY k) s;

-- name: dedup_matches
-- Per dedup key, the oldest task holding it whose window is open: it has a pending run, or
-- (keys in $2, window `active`) a running one.
SELECT DISTINCT ON (t.dedup_key) t.dedup_key, t.id
FROM skiplock_tasks t
WHERE t.dedup_key = ANY($1::text[])
  AND EXISTS (SELECT 1 FROM skiplock_runs r
              WHERE r.task_id = t.id
                AND (r.state = 'pending' OR (r.state = 'running' AND t.dedup_key = ANY($2::text[]))))
ORDER BY t.dedup_key, t.created_at, t.id;

-- name: dedup_replace
-- on_duplicate=replace: the existing task takes the new payload.
UPDATE skiplock_tasks SET payload = $2::jsonb, updated_at = $3 WHERE id = $1;

-- name: add_waiter
-- A long-poll begins: runs of this task (or this run) that end NOTIFY skiplock_ended.
INSERT INTO skiplock_waiters (waiter, id, since) VALUES ($1, $2, $3);

-- name: remove_waiter
-- A long-poll ended (answered, timed out, or its client left).
DELETE FROM skiplock_waiters WHERE waiter = $1;

-- name: delete_old_waiters
-- Waiters of an API process that died mid-wait (a wait lasts at most a minute).
DELETE FROM skiplock_waiters WHERE since < $1;

-- name: run_minutes
-- Runs ended per minute since $1 (all queues, or queue $2) by state and lateness bucket,
-- from the kept per-minute rows (see 0010_dashboard.sql).
SELECT minute, state, late_bucket, sum(n)::bigint AS n, sum(run_ms) AS run_ms
FROM skiplock_run_minutes
WHERE minute >= $1 AND ($2::text IS NULL OR queue = $2)
GROUP BY minute, state, late_bucket
ORDER BY minute;

-- name: delete_old_minutes
-- Retention of the per-minute figures.
DELETE FROM skiplock_run_minutes WHERE minute < $1;
