"""A window [start, end) cut into the coarsest rollup buckets that fit: whole UTC days, then hours, then quarter
hours, and the raw rows left at either edge — so 30 days read ~30 daily rows whatever the table holds.

Each level is a pair of arrays (starts, ends) of merged ranges; `args` turns them into query parameters.
With `cuts`, no piece straddles a cut: a trend cut at local hours or days regroups every piece exactly.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

QUARTER = dt.timedelta(minutes=15)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Ranges = tuple[list[dt.datetime], list[dt.datetime]]


@dataclass(frozen=True, slots=True)
class Cover:
    """Disjoint ranges per source that together are exactly the window."""

    day: Ranges = field(default_factory=lambda: ([], []))
    hour: Ranges = field(default_factory=lambda: ([], []))
    quarter: Ranges = field(default_factory=lambda: ([], []))
    raw: Ranges = field(default_factory=lambda: ([], []))

    def args(self, *levels: str) -> list[list[dt.datetime]]:
        """Query parameters: each rollup level's bucket starts (for `bucket = ANY($n)`, which every plan answers
        from the primary key), then the raw ranges' starts and ends (for `unnest($n, $m)`)."""
        out = [_starts(getattr(self, level), _WIDTHS[level]) for level in levels if level != "raw"]
        return [*out, *self.raw] if "raw" in levels else out


_WIDTHS = {"day": DAY, "hour": HOUR, "quarter": QUARTER}


def _starts(ranges: Ranges, width: dt.timedelta) -> list[dt.datetime]:
    return [lo + n * width for lo, hi in zip(*ranges, strict=True) for n in range((hi - lo) // width)]


def floor_to(t: dt.datetime, width: dt.timedelta) -> dt.datetime:
    """The UTC boundary of `width` (a day, an hour, a quarter) at or before `t`."""
    return EPOCH + ((t - EPOCH) // width) * width


def ceil_to(t: dt.datetime, width: dt.timedelta) -> dt.datetime:
    """The UTC boundary of `width` at or after `t`."""
    return EPOCH - ((EPOCH - t) // width) * width


def _add(ranges: Ranges, lo: dt.datetime, hi: dt.datetime) -> None:
    if lo >= hi:
        return
    starts, ends = ranges
    if ends and ends[-1] == lo:  # adjacent to the previous piece of this level: one range
        ends[-1] = hi
    else:
        starts.append(lo)
        ends.append(hi)


def _cover_one(out: Cover, start: dt.datetime, end: dt.datetime, widths: tuple[dt.timedelta, ...]) -> None:
    """Add [start, end) to `out` in time order: nested aligned ranges, the finest level outermost."""
    names = {DAY: out.day, HOUR: out.hour, QUARTER: out.quarter}
    chain = [(out.raw, start, end)]
    for width in sorted(widths):  # finest first: each coarser range lies inside the finer one
        first, last = ceil_to(chain[-1][1], width), floor_to(chain[-1][2], width)
        if first >= last:
            break
        chain.append((names[width], first, last))
    pairs = list(itertools.pairwise(chain))
    for (ranges, lo, _), (_, inner_lo, _) in pairs:
        _add(ranges, lo, inner_lo)
    _add(*chain[-1])
    for (ranges, _, hi), (_, _, inner_hi) in reversed(pairs):
        _add(ranges, inner_hi, hi)


def local_cuts(start: dt.datetime, end: dt.datetime, *, bucket: str, tz: str) -> list[dt.datetime]:
    """Where the store's local hours ('hour') or days ('day') begin inside (start, end)."""
    zone = ZoneInfo(tz)
    if bucket == "day":
        first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        days = (first + dt.timedelta(days=n) for n in range((last - first).days + 2))
        return [dt.datetime.combine(d, dt.time(0), tzinfo=zone).astimezone(dt.UTC) for d in days]
    # Every UTC offset in use is a multiple of 15 minutes, so local hours begin on quarter hours.
    t, cuts = ceil_to(start, QUARTER), []
    while t < end:
        if t.astimezone(zone).minute == 0:
            cuts.append(t)
        t += QUARTER
    return cuts


def cover(start: dt.datetime, end: dt.datetime, *, widths: tuple[dt.timedelta, ...] = (DAY, HOUR, QUARTER),
          cuts: list[dt.datetime] | None = None) -> Cover:
    """The pieces of [start, end) per level (rollup widths available) with no piece across a cut."""
    out = Cover()
    edges = [start, *sorted(c for c in cuts or () if start < c < end), end]
    for lo, hi in itertools.pairwise(edges):
        _cover_one(out, lo, hi, widths)
    return out
