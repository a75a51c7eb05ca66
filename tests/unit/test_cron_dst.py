"""Cron in the task's zone across the 2026 DST transitions: every wall-clock time fires at most
once; a time inside a spring-forward gap fires once at the first instant after the gap."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from skiplock.common import timeutil

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def local(fires: list[datetime], zi: ZoneInfo) -> list[str]:
    return [f.astimezone(zi).strftime("%m-%d %H:%M%z") for f in fires]


def test_daily_in_spring_gap_runs_at_end_of_gap() -> None:
    # 2026-03-08 02:00 EST → 03:00 EDT in New York; 02:30 does not exist that day.
    fires = timeutil.cron_preview("30 2 * * *", "America/New_York", datetime(2026, 3, 7, 12, tzinfo=NY), 3)
    assert local(fires, NY) == ["03-08 03:00-0400", "03-09 02:30-0400", "03-10 02:30-0400"]
    fires = timeutil.cron_preview("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2)
    assert local(fires, BERLIN) == ["03-29 03:00+0200", "03-30 02:30+0200"]


def test_daily_in_repeated_hour_fires_once() -> None:
    # 2026-11-01 02:00 EDT → 01:00 EST: 01:30 happens twice; fire at the first only.
    fires = timeutil.cron_preview("30 1 * * *", "America/New_York", datetime(2026, 10, 31, 12, tzinfo=NY), 3)
    assert local(fires, NY) == ["11-01 01:30-0400", "11-02 01:30-0500", "11-03 01:30-0500"]
    fires = timeutil.cron_preview("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2)
    assert local(fires, BERLIN) == ["10-25 02:30+0200", "10-26 02:30+0100"]


@pytest.mark.parametrize(("zone", "start", "expected"), [
    ("America/New_York", datetime(2026, 3, 8, 0, 30), ["01:00-0500", "03:00-0400", "04:00-0400"]),
    ("Europe/Berlin", datetime(2026, 3, 29, 0, 30), ["01:00+0100", "03:00+0200", "04:00+0200"]),
    ("America/New_York", datetime(2026, 11, 1, 0, 30), ["01:00-0400", "02:00-0500", "03:00-0500"]),
    ("Europe/Berlin", datetime(2026, 10, 25, 1, 30), ["02:00+0200", "03:00+0100", "04:00+0100"]),
])
def test_hourly_across_transitions(zone: str, start: datetime, expected: list[str]) -> None:
    zi = ZoneInfo(zone)
    fires = timeutil.cron_preview("0 * * * *", zone, start.replace(tzinfo=zi), 3)
    assert [f.astimezone(zi).strftime("%H:%M%z") for f in fires] == expected


def test_every_15_minutes_across_spring_gap() -> None:
    fires = timeutil.cron_preview("*/15 * * * *", "Europe/Berlin", datetime(2026, 3, 29, 1, 40, tzinfo=BERLIN), 3)
    assert local(fires, BERLIN) == ["03-29 01:45+0100", "03-29 03:00+0200", "03-29 03:15+0200"]


def test_every_15_minutes_across_fall_back() -> None:
    fires = timeutil.cron_preview("*/15 * * * *", "America/New_York", datetime(2026, 11, 1, 1, 40, tzinfo=NY), 3)
    # 01:45 EDT, then the repeated 01:00-01:59 (EST) is skipped, then 02:00 EST.
    assert local(fires, NY) == ["11-01 01:45-0400", "11-01 02:00-0500", "11-01 02:15-0500"]


def test_fire_times_are_strictly_increasing_and_unique_over_a_year() -> None:
    for zone in ("America/New_York", "Europe/Berlin"):
        for expr in ("*/15 * * * *", "0 * * * *", "30 2 * * *"):
            fires = timeutil.cron_preview(expr, zone, datetime(2026, 1, 1, tzinfo=UTC), 2000 if "*" in expr[:3] else 365)
            assert all(a < b for a, b in itertools.pairwise(fires))


def test_six_field_cron_has_seconds_first() -> None:
    fires = timeutil.cron_preview("*/2 * * * * *", "UTC", datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), 3)
    assert [f.second for f in fires] == [2, 4, 6]


@pytest.mark.parametrize("value", ["2026-12-01T09:00:00", "2026-12-01", "09:00Z", "2026-12-01T09:00:00+0200", 5])
def test_rfc3339_needs_an_offset(value: object) -> None:
    with pytest.raises(ValueError):
        timeutil.parse_rfc3339(value)  # type: ignore[arg-type]


def test_rfc3339_parses_offsets_and_nanoseconds() -> None:
    assert timeutil.parse_rfc3339("2026-12-01T10:00:00+01:00") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert timeutil.parse_rfc3339("2026-12-01T09:00:00.123456789Z").microsecond == 123456
    assert timeutil.iso(datetime(2026, 12, 1, 9, tzinfo=UTC)) == "2026-12-01T09:00:00Z"


def test_unknown_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        timeutil.zone("Europe/Atlantis")
