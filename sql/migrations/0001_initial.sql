-- skiplock schema: tasks (what the user asked for), runs (one row per attempt; the queue),
-- workers (who is connected where).

CREATE TABLE skiplock_tasks (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type                text NOT NULL CHECK (type ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    payload             jsonb NOT NULL DEFAULT '{}',
    queue               text NOT NULL DEFAULT 'default',
    priority            integer NOT NULL DEFAULT 0,
    run_at              timestamptz,
    cron                text,
    timezone            text NOT NULL DEFAULT 'UTC',
    catch_up            text NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('latest', 'all', 'none')),
    overlap             text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'allow', 'queue')),
    max_attempts        integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    timeout_s           double precision NOT NULL CHECK (timeout_s > 0),
    retry_backoff_s     double precision NOT NULL DEFAULT 1,
    retry_backoff_max_s double precision NOT NULL DEFAULT 300,
    retry_jitter        boolean NOT NULL DEFAULT true,
    -- Stored status; the API derives `scheduled`/`running` from `active` and the runs.
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'paused', 'cancelled', 'succeeded', 'failed', 'quarantined')),
    lost_runs           integer NOT NULL DEFAULT 0,
    idempotency_key     text UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX skiplock_tasks_created ON skiplock_tasks (created_at DESC, id DESC);

CREATE TABLE skiplock_runs (
    id               uuid PRIMARY KEY,
    task_id          uuid NOT NULL REFERENCES skiplock_tasks (id) ON DELETE CASCADE,
    attempt          integer NOT NULL CHECK (attempt >= 1),
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
    -- Copied from the task when the run is made, so the claim reads one table.
    type             text NOT NULL,
    queue            text NOT NULL,
    priority         integer NOT NULL,
    -- The slot this run belongs to (run_at or the cron fire time) and when it may start
    -- (later than scheduled_for for a retry's backoff).
    scheduled_for    timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    worker_id        text,
    coordinator_id   text,
    -- Fencing: a result, heartbeat or cancel ack counts only under the current token.
    lease_token      uuid,
    lease_expires_at timestamptz,
    deadline_at      timestamptz,
    result           jsonb,
    error            text,
    -- Why the run exists: schedule, retry, trigger (manual), catch_up.
    reason           text NOT NULL DEFAULT 'schedule',
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- One run per (task, slot, attempt): a cron slot cannot be materialised twice.
    UNIQUE (task_id, scheduled_for, attempt)
);

-- The claim: pending runs by priority then due time. Partial, so history never slows it.
CREATE INDEX skiplock_runs_claim ON skiplock_runs (priority DESC, due_at) WHERE state = 'pending';
-- The wake-up timer: earliest pending due time.
CREATE INDEX skiplock_runs_next_due ON skiplock_runs (due_at) WHERE state = 'pending';
-- The reaper: running runs by lease.
CREATE INDEX skiplock_runs_leases ON skiplock_runs (lease_expires_at) WHERE state = 'running';
CREATE INDEX skiplock_runs_task ON skiplock_runs (task_id, created_at DESC, id DESC);
CREATE INDEX skiplock_runs_created ON skiplock_runs (created_at DESC, id DESC);
CREATE INDEX skiplock_runs_finished ON skiplock_runs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE skiplock_workers (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    host              text NOT NULL,
    types             text[] NOT NULL,
    queues            text[] NOT NULL,
    slots             integer NOT NULL,
    running           integer NOT NULL DEFAULT 0,
    draining          boolean NOT NULL DEFAULT false,
    coordinator_id    text NOT NULL,
    connected_at      timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    disconnected_at   timestamptz
);
