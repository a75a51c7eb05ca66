from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCEEDED: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
    OUTCOME_CANCELLED: _ClassVar[Outcome]

class CancelReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_REASON_UNSPECIFIED: _ClassVar[CancelReason]
    CANCEL_REASON_REQUESTED: _ClassVar[CancelReason]
    CANCEL_REASON_LEASE_LOST: _ClassVar[CancelReason]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCEEDED: Outcome
OUTCOME_FAILED: Outcome
OUTCOME_CANCELLED: Outcome
CANCEL_REASON_UNSPECIFIED: CancelReason
CANCEL_REASON_REQUESTED: CancelReason
CANCEL_REASON_LEASE_LOST: CancelReason

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "results")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    results: Results
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., results: _Optional[_Union[Results, _Mapping]] = ...) -> None: ...

class RunRef(_message.Message):
    __slots__ = ("run_id", "lease_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    lease_token: str
    def __init__(self, run_id: _Optional[str] = ..., lease_token: _Optional[str] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("worker_id", "name", "host", "types", "queues", "slots", "running", "version", "blocking_types", "blocking_slots")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BLOCKING_TYPES_FIELD_NUMBER: _ClassVar[int]
    BLOCKING_SLOTS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    name: str
    host: str
    types: _containers.RepeatedScalarFieldContainer[str]
    queues: _containers.RepeatedScalarFieldContainer[str]
    slots: int
    running: _containers.RepeatedCompositeFieldContainer[RunRef]
    version: str
    blocking_types: _containers.RepeatedScalarFieldContainer[str]
    blocking_slots: int
    def __init__(self, worker_id: _Optional[str] = ..., name: _Optional[str] = ..., host: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ..., queues: _Optional[_Iterable[str]] = ..., slots: _Optional[int] = ..., running: _Optional[_Iterable[_Union[RunRef, _Mapping]]] = ..., version: _Optional[str] = ..., blocking_types: _Optional[_Iterable[str]] = ..., blocking_slots: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("running", "draining", "seq")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    running: _containers.RepeatedCompositeFieldContainer[RunRef]
    draining: bool
    seq: int
    def __init__(self, running: _Optional[_Iterable[_Union[RunRef, _Mapping]]] = ..., draining: _Optional[bool] = ..., seq: _Optional[int] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("run_id", "lease_token", "outcome", "result_json", "error", "retryable", "retry_after_s", "started_at", "finished_at", "released", "throttled")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    lease_token: str
    outcome: Outcome
    result_json: str
    error: str
    retryable: bool
    retry_after_s: float
    started_at: float
    finished_at: float
    released: bool
    throttled: bool
    def __init__(self, run_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., result_json: _Optional[str] = ..., error: _Optional[str] = ..., retryable: _Optional[bool] = ..., retry_after_s: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., released: _Optional[bool] = ..., throttled: _Optional[bool] = ...) -> None: ...

class Results(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Result]
    def __init__(self, results: _Optional[_Iterable[_Union[Result, _Mapping]]] = ...) -> None: ...

class CoordinatorMessage(_message.Message):
    __slots__ = ("welcome", "assignments", "cancel", "drain", "heartbeat_ack")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_ACK_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    assignments: Assignments
    cancel: Cancel
    drain: Drain
    heartbeat_ack: HeartbeatAck
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., assignments: _Optional[_Union[Assignments, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ..., heartbeat_ack: _Optional[_Union[HeartbeatAck, _Mapping]] = ...) -> None: ...

class HeartbeatAck(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("coordinator_id", "heartbeat_interval_s", "lease_s", "lost_run_ids")
    COORDINATOR_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    LOST_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    coordinator_id: str
    heartbeat_interval_s: float
    lease_s: float
    lost_run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, coordinator_id: _Optional[str] = ..., heartbeat_interval_s: _Optional[float] = ..., lease_s: _Optional[float] = ..., lost_run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("run_id", "lease_token", "task_id", "task_name", "type", "payload_json", "attempt", "max_attempts", "timeout_s", "scheduled_for", "queue", "not_before")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FOR_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    lease_token: str
    task_id: str
    task_name: str
    type: str
    payload_json: str
    attempt: int
    max_attempts: int
    timeout_s: float
    scheduled_for: float
    queue: str
    not_before: float
    def __init__(self, run_id: _Optional[str] = ..., lease_token: _Optional[str] = ..., task_id: _Optional[str] = ..., task_name: _Optional[str] = ..., type: _Optional[str] = ..., payload_json: _Optional[str] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., timeout_s: _Optional[float] = ..., scheduled_for: _Optional[float] = ..., queue: _Optional[str] = ..., not_before: _Optional[float] = ...) -> None: ...

class Assignments(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("run_ids", "reason", "kind")
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    kind: CancelReason
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., kind: _Optional[_Union[CancelReason, str]] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ("reason", "stop_taking_work", "resume_work")
    REASON_FIELD_NUMBER: _ClassVar[int]
    STOP_TAKING_WORK_FIELD_NUMBER: _ClassVar[int]
    RESUME_WORK_FIELD_NUMBER: _ClassVar[int]
    reason: str
    stop_taking_work: bool
    resume_work: bool
    def __init__(self, reason: _Optional[str] = ..., stop_taking_work: _Optional[bool] = ..., resume_work: _Optional[bool] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("id", "name", "host", "types", "queues", "slots", "running", "coordinator", "connected_at", "last_heartbeat_at", "draining")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    host: str
    types: _containers.RepeatedScalarFieldContainer[str]
    queues: _containers.RepeatedScalarFieldContainer[str]
    slots: int
    running: int
    coordinator: str
    connected_at: str
    last_heartbeat_at: str
    draining: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., host: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ..., queues: _Optional[_Iterable[str]] = ..., slots: _Optional[int] = ..., running: _Optional[int] = ..., coordinator: _Optional[str] = ..., connected_at: _Optional[str] = ..., last_heartbeat_at: _Optional[str] = ..., draining: _Optional[bool] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class ClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterStatusResponse(_message.Message):
    __slots__ = ("coordinator_id", "workers", "local_workers", "runs_by_state", "due_backlog", "stale_results")
    class RunsByStateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COORDINATOR_ID_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_WORKERS_FIELD_NUMBER: _ClassVar[int]
    RUNS_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    DUE_BACKLOG_FIELD_NUMBER: _ClassVar[int]
    STALE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    coordinator_id: str
    workers: int
    local_workers: int
    runs_by_state: _containers.ScalarMap[str, int]
    due_backlog: int
    stale_results: int
    def __init__(self, coordinator_id: _Optional[str] = ..., workers: _Optional[int] = ..., local_workers: _Optional[int] = ..., runs_by_state: _Optional[_Mapping[str, int]] = ..., due_backlog: _Optional[int] = ..., stale_results: _Optional[int] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class RunInfo(_message.Message):
    __slots__ = ("id", "task_id", "attempt", "state", "type", "scheduled_for", "started_at", "finished_at", "worker_id", "result_json", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FOR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    task_id: str
    attempt: int
    state: str
    type: str
    scheduled_for: str
    started_at: str
    finished_at: str
    worker_id: str
    result_json: str
    error: str
    def __init__(self, id: _Optional[str] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., state: _Optional[str] = ..., type: _Optional[str] = ..., scheduled_for: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., worker_id: _Optional[str] = ..., result_json: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class DrainWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DrainWorkerResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...
