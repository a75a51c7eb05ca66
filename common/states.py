"""The state machines, mirrored from the CHECK constraints in sql/migrations."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a cron slot that did not run (overlap, catch-up); says why in `error`

    @property
    def final(self) -> bool:
        return self not in (RunState.PENDING, RunState.RUNNING)


# Every move a run may make; each UPDATE guards its source state in its WHERE clause
# (tests/unit/test_sql_and_layout.py checks the statements against this table).
# running → pending: a claimed run given back (its worker left before the send, or a cron
# slot queued behind the current run); running → skipped: a claimed cron slot that must not
# run (overlap, catch-up). Both happen before any worker saw the run.
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.PENDING: frozenset({RunState.RUNNING, RunState.CANCELLED, RunState.SKIPPED}),
    RunState.RUNNING: frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED,
                                 RunState.PENDING, RunState.SKIPPED}),
    RunState.SUCCEEDED: frozenset(),
    RunState.FAILED: frozenset(),
    RunState.CANCELLED: frozenset(),
    RunState.SKIPPED: frozenset(),
}


class TaskStatus(StrEnum):
    """What is stored. `scheduled`/`running` are derived when a task is read."""

    ACTIVE = "active"
    PAUSED = "paused"
    QUARANTINED = "quarantined"  # parked after its runs kept losing workers; shown as paused
    CANCELLED = "cancelled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# Every move a stored task status may make (tests/unit/test_sql_and_layout.py checks the
# statements that set it). succeeded/failed: finish_tasks, when a one-off task's last run
# ended; quarantined: count_lost_runs; paused/active: pause_task, resume_task; cancelled:
# cancel_task, from any status not final.
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.ACTIVE: frozenset({TaskStatus.PAUSED, TaskStatus.QUARANTINED, TaskStatus.CANCELLED,
                                  TaskStatus.SUCCEEDED, TaskStatus.FAILED}),
    TaskStatus.PAUSED: frozenset({TaskStatus.ACTIVE, TaskStatus.CANCELLED, TaskStatus.SUCCEEDED,
                                  TaskStatus.FAILED}),
    TaskStatus.QUARANTINED: frozenset({TaskStatus.ACTIVE, TaskStatus.CANCELLED}),
    TaskStatus.CANCELLED: frozenset(),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
}


class RunReason(StrEnum):
    """Why a run exists (a CHECK in sql/migrations/0005_run_reason.sql)."""

    SCHEDULE = "schedule"  # its task's run_at, cron fire time, or "now"
    RETRY = "retry"        # the attempt before it failed
    TRIGGER = "trigger"    # POST /api/tasks/{id}/trigger
    CATCH_UP = "catch_up"  # a missed cron slot run late on purpose
    QUEUED = "queued"      # overlap=queue: waits for the run in progress


class TaskState(StrEnum):
    """What users see (the contract's task states)."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


def task_state(status: str, has_running: bool) -> TaskState:
    if status == TaskStatus.ACTIVE:
        return TaskState.RUNNING if has_running else TaskState.SCHEDULED
    if status == TaskStatus.QUARANTINED:
        return TaskState.PAUSED
    return TaskState(status)


# What a wait (the API's long-poll, the client's wait) waits for.
FINAL_RUN_STATES = frozenset(s.value for s in RunState if s.final)
FINAL_TASK_STATES = frozenset({TaskState.SUCCEEDED.value, TaskState.FAILED.value, TaskState.CANCELLED.value})
