from __future__ import annotations

from datetime import UTC, datetime, timedelta

from skiplock.coordinator.policy import CATCH_UP_ALL_LIMIT, next_slot, retry_delay


def test_backoff_doubles_and_caps_without_jitter() -> None:
    delays = [retry_delay(n, 1.0, 10.0, jitter=False) for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_full_jitter_is_uniform_below_the_cap() -> None:
    assert retry_delay(3, 1.0, 10.0, jitter=True, rand=lambda: 0.0) == 0.0
    assert retry_delay(3, 1.0, 10.0, jitter=True, rand=lambda: 0.5) == 2.0


def test_retry_after_is_a_floor() -> None:
    assert retry_delay(1, 1.0, 10.0, jitter=False, retry_after_s=30.0) == 30.0


T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_next_slot_on_time() -> None:
    assert next_slot("* * * * *", "UTC", "latest", T0, T0 + timedelta(seconds=1)) == (T0 + timedelta(minutes=1), "schedule")


def test_next_slot_latest_and_none_jump_to_the_present() -> None:
    late = T0 + timedelta(minutes=10, seconds=5)
    for policy in ("latest", "none"):
        assert next_slot("* * * * *", "UTC", policy, T0, late) == (T0 + timedelta(minutes=11), "schedule")


def test_next_slot_all_replays_each_missed_fire_up_to_a_limit() -> None:
    late = T0 + timedelta(minutes=10, seconds=5)
    assert next_slot("* * * * *", "UTC", "all", T0, late) == (T0 + timedelta(minutes=1), "catch_up")
    very_late = T0 + timedelta(minutes=CATCH_UP_ALL_LIMIT + 5, seconds=5)
    fire, reason = next_slot("* * * * *", "UTC", "all", T0, very_late)
    assert reason == "schedule" and fire > very_late
