"""Ids are UUIDv7: time first, strictly increasing within a process, never stamped ahead."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest

from skiplock.common import ids


def _ms(u: uuid.UUID) -> int:
    return u.int >> 80


def test_ids_are_version_7_and_strictly_increasing() -> None:
    before = time.time_ns() // 1_000_000
    made = [ids.new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in made)
    assert all(a < b for a, b in itertools.pairwise(made))
    # Many ids in one millisecond share its stamp: none is dated after the call returned.
    assert before <= _ms(made[0]) and _ms(made[-1]) <= after
    assert len({_ms(u) for u in made}) < len(made)


def test_a_full_counter_moves_to_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    first = ids.new_id()
    monkeypatch.setattr(time, "time_ns", lambda: _ms(first) * 1_000_000)  # still that millisecond
    monkeypatch.setattr(ids, "_counter", (1 << 42) - 1)
    nxt = ids.new_id()
    assert nxt > first and _ms(nxt) == _ms(first) + 1
    assert nxt.version == 7 and nxt.variant == uuid.RFC_4122


def test_a_clock_that_steps_back_does_not_reorder_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    first = ids.new_id()
    monkeypatch.setattr(time, "time_ns", lambda: (_ms(first) - 5_000) * 1_000_000)
    nxt = ids.new_id()
    assert nxt > first and _ms(nxt) == _ms(first) and nxt.version == 7
