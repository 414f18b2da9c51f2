"""Business time: how much of a span falls inside business hours on business days, in the store's zone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Final
from zoneinfo import ZoneInfo

from bot.config import HourWindow

# How far apart the UTC offset is sampled when looking for the next DST change (then found to the microsecond):
# no zone changes its offset twice within an hour.
_PROBE: Final = dt.timedelta(hours=1)
_TICK: Final = dt.timedelta(microseconds=1)


def business_time_between(start: dt.datetime, end: dt.datetime, *, tz: ZoneInfo, hours: HourWindow,
                          days: frozenset[int] = frozenset(range(7))) -> dt.timedelta:
    """How much of [start, end) falls inside business hours on business days in the store's zone: the real time
    during which `hours.open_on` holds, DST days included.

    The span is cut where the UTC offset changes; within each piece the local clock runs with real time, so its
    wall-clock overlap with each day's window is real time. A window time the clocks skip (inside a spring-forward
    gap, such as Saturday's 23:59 when Nuuk jumps from 23:00 to Sunday 00:00) simply never comes: the day's window
    ends where the day does. An hour the clocks repeat is counted each time it passes (Cairo's 23:00-24:00 twice on
    the night it falls back at midnight)."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    total = dt.timedelta()
    for piece_start, piece_end, offset in _fixed_offset_pieces(start, end, tz):
        total += _wall_overlap(piece_start + offset, piece_end + offset, hours, days)
    return total


def _fixed_offset_pieces(start: dt.datetime, end: dt.datetime,
                         tz: ZoneInfo) -> Iterator[tuple[dt.datetime, dt.datetime, dt.timedelta]]:
    """[start, end) cut into pieces with one UTC offset each: (piece start, piece end, offset)."""
    while start < end:
        offset = _offset(start, tz)
        probe = start
        while probe < end and _offset(probe, tz) == offset:
            probe += _PROBE
        piece_end = min(probe, end)
        if _offset(piece_end, tz) != offset:  # the change lies in (probe - _PROBE, probe]: find it exactly
            low, high = probe - _PROBE, piece_end
            while high - low > _TICK:
                mid = low + (high - low) / 2
                low, high = (mid, high) if _offset(mid, tz) == offset else (low, mid)
            piece_end = high
        yield start, piece_end, offset
        start = piece_end


def _offset(at: dt.datetime, tz: ZoneInfo) -> dt.timedelta:
    offset = at.astimezone(tz).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _wall_overlap(wall_start: dt.datetime, wall_end: dt.datetime, hours: HourWindow,
                  days: frozenset[int]) -> dt.timedelta:
    """How much of the local wall-clock span [wall_start, wall_end) (naive, one offset) lies inside each business
    day's window: D start..D end, or D start..D+1 end for a window past midnight (18:00-02:00)."""
    total = dt.timedelta()
    naive_start, naive_end = wall_start.replace(tzinfo=None), wall_end.replace(tzinfo=None)
    day = naive_start.date() - dt.timedelta(days=1)
    while (opening := dt.datetime.combine(day, hours.start)) < naive_end:
        if day.weekday() in days:  # a closed day: none of its opening counts
            closing_day = day if hours.end > hours.start else day + dt.timedelta(days=1)
            overlap = min(dt.datetime.combine(closing_day, hours.end), naive_end) - max(opening, naive_start)
            total += max(overlap, dt.timedelta())
        day += dt.timedelta(days=1)
    return total
