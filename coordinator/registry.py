"""The workers connected to this coordinator and the runs each holds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from skiplock.proto import skiplock_pb2 as pb


@dataclass(eq=False)
class WorkerConn:
    id: str
    name: str
    host: str
    types: tuple[str, ...]
    queues: tuple[str, ...]
    slots: int
    # Types that take a process or a thread each on the worker: at most blocking_slots of
    # them in flight at once (0: no such limit, an older worker).
    blocking_types: tuple[str, ...] = ()
    blocking_slots: int = 0
    outbound: asyncio.Queue[pb.CoordinatorMessage | None] = field(default_factory=asyncio.Queue)
    # run id → lease token of runs assigned and not yet reported.
    inflight: dict[str, str] = field(default_factory=dict)
    # Of those, the runs of blocking types (pruned to what is still in flight when read).
    blocking_inflight: set[str] = field(default_factory=set)
    draining: bool = False
    drain_requested: bool = False  # by an operator (Admin DrainWorker), until UndrainWorker
    closed: bool = False

    @property
    def free(self) -> int:
        if self.draining or self.closed:
            return 0
        return max(0, self.slots - len(self.inflight))

    @property
    def blocking_free(self) -> int:
        """Free slots for runs of blocking types."""
        if not self.blocking_types:
            return 0
        if not self.blocking_slots:
            return self.free
        self.blocking_inflight &= self.inflight.keys()
        return max(0, min(self.free, self.blocking_slots - len(self.blocking_inflight)))

    @property
    def signature(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        return (tuple(sorted(self.types)), tuple(sorted(self.queues)), tuple(sorted(self.blocking_types)))

    def send(self, msg: pb.CoordinatorMessage) -> None:
        if not self.closed:
            self.outbound.put_nowait(msg)


class Registry:
    def __init__(self) -> None:
        self.workers: dict[str, WorkerConn] = {}

    def add(self, w: WorkerConn) -> WorkerConn | None:
        """Register; returns a previous connection of the same worker id, now replaced."""
        old = self.workers.get(w.id)
        self.workers[w.id] = w
        return old

    def remove(self, w: WorkerConn) -> None:
        if self.workers.get(w.id) is w:
            del self.workers[w.id]

