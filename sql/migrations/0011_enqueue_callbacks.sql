-- Transactional enqueue and callbacks.
--
-- skiplock_enqueue(...) (one task, named arguments) and skiplock_enqueue_many(jsonb) (an
-- array of tasks, the REST API's fields) make tasks and their first runs inside the caller's
-- transaction, from any language or trigger; nothing exists until it commits. Many tasks
-- are written by one INSERT per table, so the tables' statement triggers (counters) run once
-- per call, not once per task.
--
-- They refuse what the REST API refuses, naming the field the same way: SQLSTATE 22023
-- (invalid_parameter_value) with the message "<field>: <why>" (`tasks[i].` in front for the
-- i-th task of many). skiplock.enqueue (Python) runs the API's own validation first, so from
-- Python the rules are exactly the API's; the checks here are that same list for callers
-- without it, and a test holds the two doors to the same answers. What only Python can
-- compute stays there: a cron task's first fire time (croniter, in its time zone) comes in as
-- `first_run_at`, and a cron task without it is refused; an http/shell payload's finer points
-- (header names, status lists) are checked here only in shape, and by the worker when it runs.
--
-- A run due now (or within 10 s) wakes coordinators with one NOTIFY per transaction, not per
-- task: the payload is constant, and PostgreSQL folds equal notifications of one transaction
-- into one (NOTIFY takes a lock at commit; fewer is better). A later run needs none:
-- coordinators re-read the next due time at least every poll interval.
-- depends: 0010_dashboard

-- A task's completion callbacks: [{"url", "events", "headers"}] (see coordinator/callbacks.py).
ALTER TABLE skiplock_tasks ADD COLUMN callbacks jsonb;

-- A time-ordered id like the API's (UUIDv7: 48 bits of milliseconds, then random bits).
CREATE FUNCTION skiplock_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
                  substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                  FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

CREATE FUNCTION skiplock_refuse(field text, why text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = field || ': ' || why, COLUMN = field;
END $$;

-- One task's fields (a JSON object, the API's names) checked as the API checks them.
CREATE FUNCTION skiplock_check_task(t jsonb, p text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    typ text := t->>'type';
    payload jsonb := coalesce(t->'payload', '{}');
    num double precision;
    k text;
BEGIN
    IF jsonb_typeof(t) IS DISTINCT FROM 'object' THEN
        PERFORM skiplock_refuse(rtrim(p, '.'), 'must be a JSON object of task fields');
    END IF;
    IF typ IS NULL THEN PERFORM skiplock_refuse(p || 'type', 'is required'); END IF;
    IF typ !~ '^[a-z][a-z0-9_.-]{0,63}$' THEN
        PERFORM skiplock_refuse(p || 'type', 'must match ^[a-z][a-z0-9_.-]{0,63}$ (http, shell, or a custom handler name)');
    END IF;
    IF jsonb_typeof(payload) <> 'object' THEN PERFORM skiplock_refuse(p || 'payload', 'must be a JSON object'); END IF;
    IF typ = 'http' THEN
        IF jsonb_typeof(payload->'url') IS DISTINCT FROM 'string'
           OR (payload->>'url') !~* '^https?://[^\s/?#@:\[\]]+' THEN
            PERFORM skiplock_refuse(p || 'payload.url', 'must be an absolute http:// or https:// URL with a host');
        END IF;
        IF payload ? 'method' AND upper(payload->>'method') NOT IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS') THEN
            PERFORM skiplock_refuse(p || 'payload.method', 'must be one of DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT');
        END IF;
        IF payload ? 'json' AND payload ? 'body' THEN
            PERFORM skiplock_refuse(p || 'payload.body', 'give either json or body, not both');
        END IF;
    ELSIF typ = 'shell' THEN
        IF NOT payload ? 'command' OR jsonb_typeof(payload->'command') NOT IN ('string', 'array')
           OR payload->'command' IN ('""', '[]') THEN
            PERFORM skiplock_refuse(p || 'payload.command', 'is required: a string (run by /bin/sh -c) or a list of arguments');
        END IF;
    END IF;
    IF t ? 'name' AND (jsonb_typeof(t->'name') <> 'string' OR length(t->>'name') NOT BETWEEN 1 AND 200) THEN
        PERFORM skiplock_refuse(p || 'name', 'must be 1 to 200 characters long');
    END IF;
    IF (t ? 'run_at')::int + (t ? 'delay_s')::int + (t ? 'cron')::int > 1 THEN
        PERFORM skiplock_refuse(p || CASE WHEN t ? 'cron' THEN 'cron' ELSE 'delay_s' END,
                                'give at most one of run_at, delay_s, cron');
    END IF;
    IF t ? 'delay_s' AND (jsonb_typeof(t->'delay_s') <> 'number'
                          OR NOT ((t->>'delay_s')::double precision BETWEEN 0 AND 10 * 366 * 86400.0)) THEN
        PERFORM skiplock_refuse(p || 'delay_s', 'must be >= 0 and <= 316224000');
    END IF;
    IF t ? 'run_at' AND (t->>'run_at') !~ '^(19|20)[0-9]{2}-' THEN
        PERFORM skiplock_refuse(p || 'run_at', 'must be an RFC 3339 timestamp with an offset, in the years 1900 to 2099');
    END IF;
    IF NOT t ? 'cron' AND (t ? 'catch_up' OR t ? 'overlap') THEN
        PERFORM skiplock_refuse(p || CASE WHEN t ? 'catch_up' THEN 'catch_up' ELSE 'overlap' END,
                                'applies to cron tasks only');
    END IF;
    IF t ? 'cron' AND NOT t ? 'first_run_at' THEN
        PERFORM skiplock_refuse(p || 'cron', 'a cron task needs its first fire time (first_run_at): create cron tasks '
                                'with skiplock.enqueue in Python or through the REST API, which compute it');
    END IF;
    -- (pg_timezone_names would read every zone file, tens of ms a call: the conversion is
    -- the check, and only for a zone that is not UTC.)
    IF t ? 'timezone' AND coalesce(t->>'timezone', '') <> 'UTC' THEN
        BEGIN
            PERFORM now() AT TIME ZONE (t->>'timezone');
        EXCEPTION WHEN invalid_parameter_value OR null_value_not_allowed THEN
            PERFORM skiplock_refuse(p || 'timezone', 'unknown time zone ' || coalesce(t->>'timezone', 'null')
                                    || ' (use an IANA name like Europe/Berlin)');
        END;
    END IF;
    IF t ? 'catch_up' AND t->>'catch_up' NOT IN ('latest', 'all', 'none') THEN
        PERFORM skiplock_refuse(p || 'catch_up', 'must be one of latest, all, none');
    END IF;
    IF t ? 'overlap' AND t->>'overlap' NOT IN ('skip', 'allow', 'queue') THEN
        PERFORM skiplock_refuse(p || 'overlap', 'must be one of skip, allow, queue');
    END IF;
    IF t ? 'queue' AND coalesce(t->>'queue', '') !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' THEN
        PERFORM skiplock_refuse(p || 'queue', 'must be 1-64 characters of letters, digits, _ . : -');
    END IF;
    FOREACH k IN ARRAY ARRAY['priority', 'max_attempts', 'concurrency_limit'] LOOP
        IF t ? k AND (jsonb_typeof(t->k) <> 'number' OR (t->>k)::numeric <> trunc((t->>k)::numeric)) THEN
            PERFORM skiplock_refuse(p || replace(k, 'concurrency_limit', 'concurrency.limit'), 'must be an integer');
        END IF;
    END LOOP;
    IF t ? 'priority' AND (t->>'priority')::numeric NOT BETWEEN -32768 AND 32767 THEN
        PERFORM skiplock_refuse(p || 'priority', 'must be between -32768 and 32767');
    END IF;
    IF t ? 'max_attempts' AND (t->>'max_attempts')::numeric NOT BETWEEN 1 AND 100 THEN
        PERFORM skiplock_refuse(p || 'max_attempts', 'must be between 1 and 100');
    END IF;
    FOREACH k IN ARRAY ARRAY['timeout_s', 'retry_backoff_s', 'retry_backoff_max_s'] LOOP
        IF t ? k THEN
            num := CASE WHEN jsonb_typeof(t->k) = 'number' THEN (t->>k)::double precision END;
            IF num IS NULL OR num > 7 * 86400.0 OR num < 0 OR (k = 'timeout_s' AND num = 0) THEN
                PERFORM skiplock_refuse(p || k, CASE WHEN k = 'timeout_s' THEN 'must be > 0 and <= 604800'
                                                     ELSE 'must be >= 0 and <= 604800' END);
            END IF;
        END IF;
    END LOOP;
    IF t ? 'retry_jitter' AND jsonb_typeof(t->'retry_jitter') <> 'boolean' THEN
        PERFORM skiplock_refuse(p || 'retry_jitter', 'must be true or false');
    END IF;
    IF t ? 'idempotency_key' AND length(coalesce(t->>'idempotency_key', '')) NOT BETWEEN 1 AND 200 THEN
        PERFORM skiplock_refuse(p || 'idempotency_key', 'must be 1 to 200 characters long');
    END IF;
    IF t ? 'concurrency_limit' AND NOT t ? 'concurrency_key' THEN
        PERFORM skiplock_refuse(p || 'concurrency.key', 'is required: the runs of tasks sharing it are limited together');
    END IF;
    IF t ? 'concurrency_key' AND length(coalesce(t->>'concurrency_key', '')) NOT BETWEEN 1 AND 200 THEN
        PERFORM skiplock_refuse(p || 'concurrency.key', 'must be 1 to 200 characters long');
    END IF;
    IF t ? 'concurrency_limit' AND (t->>'concurrency_limit')::numeric NOT BETWEEN 1 AND 10000 THEN
        PERFORM skiplock_refuse(p || 'concurrency.limit', 'must be between 1 and 10000');
    END IF;
    IF t ? 'rate_limit' AND NOT EXISTS (SELECT 1 FROM skiplock_rate_limits l WHERE l.name = t->>'rate_limit') THEN
        PERFORM skiplock_refuse(p || 'rate_limit', 'no rate limit named ' || quote_literal(t->>'rate_limit')
                                || '; create it first with PUT /api/rate-limits/' || (t->>'rate_limit'));
    END IF;
    IF t ? 'callbacks' AND jsonb_typeof(t->'callbacks') <> 'array' THEN
        PERFORM skiplock_refuse(p || 'callbacks', 'must be a list of {"url", "events", "headers"}');
    END IF;
END $$;

-- Many tasks (a JSON array of objects with the API's fields, plus `first_run_at` for cron
-- tasks and an optional `id`); returns their ids in order (for an idempotency key already
-- taken, the id of the task that holds it).
CREATE FUNCTION skiplock_enqueue_many(tasks jsonb) RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    i integer := 0;
    t jsonb;
    now_ timestamptz := now();
    soon boolean;
BEGIN
    IF jsonb_typeof(tasks) IS DISTINCT FROM 'array' THEN
        PERFORM skiplock_refuse('tasks', 'must be a JSON array of tasks');
    END IF;
    -- The API's "concurrency": {"key", "limit"} is taken as well as the flat columns.
    tasks := (SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(e) = 'object' AND e ? 'concurrency'
                                             THEN (e - 'concurrency') || jsonb_strip_nulls(jsonb_build_object(
                                                      'concurrency_key', e->'concurrency'->'key',
                                                      'concurrency_limit', e->'concurrency'->'limit'))
                                             ELSE e END ORDER BY n), '[]')
              FROM jsonb_array_elements(tasks) WITH ORDINALITY AS x(e, n));
    FOR t IN SELECT value FROM jsonb_array_elements(tasks) LOOP
        PERFORM skiplock_check_task(t, CASE WHEN jsonb_array_length(tasks) = 1 THEN '' ELSE 'tasks[' || i || '].' END);
        i := i + 1;
    END LOOP;
    -- Rate limits named are held (KEY SHARE) until commit, so none is deleted under a task.
    PERFORM 1 FROM skiplock_rate_limits l
    WHERE l.name IN (SELECT e->>'rate_limit' FROM jsonb_array_elements(tasks) e) ORDER BY l.name FOR KEY SHARE;
    RETURN QUERY
    WITH given AS (
        SELECT coalesce((e->>'id')::uuid, skiplock_uuid7()) AS id, n, e
        FROM jsonb_array_elements(tasks) WITH ORDINALITY AS x(e, n)
    ), v AS (
        SELECT id, n, e->>'type' AS type, coalesce(e->>'name', e->>'type') AS name, coalesce(e->'payload', '{}') AS payload,
               coalesce(e->>'queue', 'default') AS queue, coalesce((e->>'priority')::integer, 0) AS priority,
               (e->>'run_at')::timestamptz AS run_at, (e->>'delay_s')::double precision AS delay_s, e->>'cron' AS cron,
               coalesce(e->>'timezone', 'UTC') AS timezone, coalesce(e->>'catch_up', 'latest') AS catch_up,
               coalesce(e->>'overlap', 'skip') AS overlap,
               coalesce((e->>'max_attempts')::integer, CASE WHEN e ? 'cron' THEN 1 ELSE 3 END) AS max_attempts,
               coalesce((e->>'timeout_s')::double precision, 300) AS timeout_s,
               coalesce((e->>'retry_backoff_s')::double precision, 1) AS retry_backoff_s,
               coalesce((e->>'retry_backoff_max_s')::double precision, 300) AS retry_backoff_max_s,
               coalesce((e->>'retry_jitter')::boolean, true) AS retry_jitter, e->>'idempotency_key' AS idempotency_key,
               e->>'concurrency_key' AS concurrency_key,
               CASE WHEN e ? 'concurrency_key' THEN coalesce((e->>'concurrency_limit')::integer, 1) END AS concurrency_limit,
               e->>'rate_limit' AS rate_limit, e->'callbacks' AS callbacks, (e->>'first_run_at')::timestamptz AS first_run_at
        FROM given
    ), ins AS (
        INSERT INTO skiplock_tasks (id, name, type, payload, queue, priority, run_at, cron, timezone, catch_up, overlap,
                                    max_attempts, timeout_s, retry_backoff_s, retry_backoff_max_s, retry_jitter,
                                    idempotency_key, concurrency_key, concurrency_limit, rate_limit, callbacks,
                                    created_at, updated_at)
        SELECT id, name, type, payload, queue, priority, run_at, cron, timezone, catch_up, overlap, max_attempts,
               timeout_s, retry_backoff_s, retry_backoff_max_s, retry_jitter, idempotency_key, concurrency_key,
               concurrency_limit, rate_limit, callbacks, now_, now_
        FROM v ORDER BY n
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
    ), fire AS (
        SELECT v.*, CASE WHEN v.cron IS NOT NULL THEN v.first_run_at
                         WHEN v.run_at IS NOT NULL THEN v.run_at
                         WHEN v.delay_s IS NOT NULL THEN now_ + make_interval(secs => v.delay_s)
                         ELSE now_ END AS at
        FROM v JOIN ins ON ins.id = v.id
    ), runs AS (
        INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for, due_at, reason, created_at,
                                   concurrency_key, concurrency_limit, rate_limit)
        SELECT skiplock_uuid7(), id, 1, type, queue, priority, at, greatest(at, now_), 'schedule', now_,
               concurrency_key, concurrency_limit, rate_limit
        FROM fire
        RETURNING due_at
    ), woke AS (
        SELECT pg_notify('skiplock_wake', '0') FROM (SELECT 1 FROM runs WHERE due_at <= now_ + interval '10 seconds' LIMIT 1) s
    )
    -- (A key's holder is looked up only for a task not inserted, by the key's unique index.)
    SELECT coalesce(ins.id, (SELECT h.id FROM skiplock_tasks h WHERE h.idempotency_key = v.idempotency_key))
    FROM v
    LEFT JOIN ins ON ins.id = v.id
    CROSS JOIN (SELECT count(*) FROM woke) w
    ORDER BY v.n;
END $$;

-- One task, with named arguments: SELECT skiplock_enqueue(type => 'email', payload => '{...}').
CREATE FUNCTION skiplock_enqueue(
    type text,
    payload jsonb DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    delay_s double precision DEFAULT NULL,
    name text DEFAULT NULL,
    queue text DEFAULT NULL,
    priority integer DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    timeout_s double precision DEFAULT NULL,
    retry_backoff_s double precision DEFAULT NULL,
    retry_backoff_max_s double precision DEFAULT NULL,
    retry_jitter boolean DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    concurrency_key text DEFAULT NULL,
    concurrency_limit integer DEFAULT NULL,
    rate_limit text DEFAULT NULL,
    cron text DEFAULT NULL,
    timezone text DEFAULT NULL,
    catch_up text DEFAULT NULL,
    overlap text DEFAULT NULL,
    first_run_at timestamptz DEFAULT NULL,  -- a cron task's first fire time (skiplock.enqueue computes it)
    callbacks jsonb DEFAULT NULL,
    task_id uuid DEFAULT NULL  -- the task's id, when the caller made one
) RETURNS uuid LANGUAGE sql AS $$
    SELECT skiplock_enqueue_many(jsonb_build_array((SELECT jsonb_object_agg(key, value) FROM jsonb_each(jsonb_build_object(
        'type', type, 'payload', payload, 'run_at', run_at, 'delay_s', delay_s, 'name', name, 'queue', queue,
        'priority', priority, 'max_attempts', max_attempts, 'timeout_s', timeout_s,
        'retry_backoff_s', retry_backoff_s, 'retry_backoff_max_s', retry_backoff_max_s,
        'retry_jitter', retry_jitter, 'idempotency_key', idempotency_key, 'concurrency_key', concurrency_key,
        'concurrency_limit', concurrency_limit, 'rate_limit', rate_limit, 'cron', cron, 'timezone', timezone,
        'catch_up', catch_up, 'overlap', overlap, 'first_run_at', first_run_at, 'callbacks', callbacks,
        'id', task_id)) WHERE value <> 'null'::jsonb)))  -- absent, not null: the defaults apply
    LIMIT 1
$$;
