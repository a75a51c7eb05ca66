-- Paused queues: a row per queue an operator paused. The claim and the wake-up timer skip
-- pending runs of these queues (runs already going finish); resume deletes the row and
-- wakes the coordinators. A queue no task uses yet may be paused too.
-- depends: 0006_history

CREATE TABLE skiplock_queue_pauses (
    queue     text PRIMARY KEY,
    paused_at timestamptz NOT NULL
);
