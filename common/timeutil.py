"""Time helpers: RFC 3339 in and out, and cron fire times in an IANA zone.

Cron rules (tested around the 2026 DST transitions): croniter walks wall-clock time in the
task's zone; a fire time inside a spring-forward gap runs once, at the first valid instant
after the gap (once, even when several gap times map onto it); a wall-clock time that repeats
when clocks fall back fires once, at its first occurrence. In short: every wall-clock time in
the task's zone fires at most once, and none is silently lost to a gap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


# A paused task's pending run waits with this due time; asyncpg maps it to 'infinity'.
NEVER = datetime.max.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_rfc3339(value: str) -> datetime:
    """Parse a timestamp that carries an explicit offset; raise ValueError otherwise."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, like 2026-12-01T09:00:00Z")
    text = value.replace("z", "Z").replace("t", "T")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    return datetime.fromisoformat(text).astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _iso(value)


@functools.lru_cache(maxsize=4096)  # a batch's views share their created_at and due times
def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def zone(name: str) -> ZoneInfo:
    """An IANA zone; ValueError for an unknown name."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ValueError("must be an IANA time zone name like Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name like Europe/Berlin") from None


def validate_cron(expr: str) -> None:
    """5 fields, or 6 with seconds first; ValueError with a reason otherwise."""
    if not isinstance(expr, str):
        raise ValueError("must be a string")
    fields = expr.split()
    if len(expr) > 200:
        raise ValueError("must be at most 200 characters")
    if len(fields) not in (5, 6) or not expr.isascii():
        raise ValueError("must have 5 fields (minute hour day month weekday) or 6 (seconds first)")
    try:
        _iter(expr, datetime(2026, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError("never fires (no matching date, like 30 February)") from None
    except Exception as exc:  # croniter raises several types for bad expressions
        raise ValueError(f"not a valid cron expression: {exc}") from None


def _iter(expr: str, start: datetime) -> croniter:
    six = len(expr.split()) == 6
    return croniter(expr, start, second_at_beginning=six)


@functools.lru_cache(maxsize=4096)
def cron_next(expr: str, tz: str, after: datetime) -> datetime:
    """The first fire time strictly after `after`, as an aware UTC datetime.

    Memoised: a croniter step costs about a millisecond, and a fleet of tasks sharing one
    schedule asks the same question for every slot of a claim (300 tasks every 2 s spent
    half a second per fire in croniter before)."""
    return next(cron_iter(expr, tz, after))


def cron_iter(expr: str, tz: str, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after `after`, in UTC, each once, in order."""
    zi = zone(tz)
    it = _iter(expr, after.astimezone(zi))
    last: datetime | None = None
    while True:
        fire = it.get_next(datetime)
        if fire.tzinfo is None:
            fire = fire.replace(tzinfo=zi)
        local = fire.astimezone(zi)
        if local.replace(fold=0).astimezone(UTC) != local.astimezone(UTC):
            continue  # the second pass through a repeated (fall-back) wall time
        fire = normalise_wall_time(fire, zi).astimezone(UTC)
        if fire <= after.astimezone(UTC) or (last is not None and fire <= last):
            continue  # a gap time mapped onto a slot that already fired
        last = fire
        yield fire


def normalise_wall_time(fire: datetime, zi: ZoneInfo) -> datetime:
    """Map a wall time that does not exist (spring-forward gap) to the first valid instant
    after the gap; leave valid times alone."""
    naive = fire.replace(tzinfo=None)
    as_fold0 = naive.replace(tzinfo=zi, fold=0)
    roundtrip = as_fold0.astimezone(UTC).astimezone(zi).replace(tzinfo=None)
    if roundtrip == naive:
        return fire
    # In a gap: the instant the gap ends is where UTC offset changes.
    utc_guess = as_fold0.astimezone(UTC)
    probe = utc_guess - timedelta(hours=3)
    end = utc_guess + timedelta(hours=3)
    before_offset = probe.astimezone(zi).utcoffset()
    while probe < end:
        nxt = probe + timedelta(minutes=1)
        if nxt.astimezone(zi).utcoffset() != before_offset:
            # First minute with the new offset.
            lo, hi = probe, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zi).utcoffset() == before_offset:
                    lo = mid
                else:
                    hi = mid
            return hi.replace(microsecond=0).astimezone(zi)
        probe = nxt
    return fire


def cron_preview(expr: str, tz: str, after: datetime, count: int = 5) -> list[datetime]:
    it = cron_iter(expr, tz, after)
    return [next(it) for _ in range(count)]


def cron_latest_at_or_before(expr: str, tz: str, after: datetime, now: datetime,
                             limit: int = 100_000) -> tuple[datetime | None, int]:
    """The last fire time in (after, now], and how many fire times that window held."""
    latest: datetime | None = None
    count = 0
    for fire in cron_iter(expr, tz, after):
        if fire > now or count >= limit:
            break
        latest, count = fire, count + 1
    return latest, count
