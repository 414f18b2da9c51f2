"""The expected-rate model: a robust mean per local weekday and hour over the last weeks, shrunk toward the
all-days hourly profile. Pure: history in, a frozen Rhythm out; no database, no clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from queries.rhythm import HourCount

HOURS: Final = 24
HOUR: Final = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RhythmParams:
    """How much history the model reads and how far it trusts a single weekday's hour."""

    weeks: int = 8  # same-weekday samples per cell; older weeks say less about today's store
    min_weeks: int = 2  # fewer whole weeks of history: no rhythm, the fixed rules apply
    shrink_weeks: float = 1.0  # pseudo-weeks of the all-days profile mixed into each weekday-hour


@dataclass(frozen=True, slots=True)
class Expected:
    """Expected completed orders and revenue (minor units of the rhythm's currency)."""

    orders: float
    revenue: float

    def __add__(self, other: Expected) -> Expected:
        return Expected(self.orders + other.orders, self.revenue + other.revenue)

    def scaled(self, factor: float) -> Expected:
        """This expectation for a fraction (or multiple) of its time."""
        return Expected(self.orders * factor, self.revenue * factor)


NOTHING: Final = Expected(0.0, 0.0)
DEFAULT_PARAMS: Final = RhythmParams()


@dataclass(frozen=True, slots=True)
class Rhythm:
    """Expected orders and revenue per hour, by local weekday (0 = Monday) and local hour."""

    currency: str  # revenue is this currency's (the store's largest); orders count every currency
    weeks: int  # weeks of history behind each cell
    rates: tuple[tuple[Expected, ...], ...]  # rates[weekday][hour], per hour

    def rate_at(self, t: dt.datetime, tz: ZoneInfo) -> Expected:
        """The expected rate per hour at the local hour of `t`."""
        local = t.astimezone(tz)
        return self.rates[local.weekday()][local.hour]

    def between(self, start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> Expected:
        """Expected orders and revenue in [start, end), hour piece by local hour piece (DST-aware)."""
        total, t = NOTHING, start
        while t < end:
            local = t.astimezone(tz)
            # Zone offsets are whole minutes, so the next local hour starts this far away in real time.
            to_next = dt.timedelta(minutes=60 - local.minute, seconds=-local.second, microseconds=-local.microsecond)
            piece_end = min(t + to_next, end)
            total += self.rates[local.weekday()][local.hour].scaled((piece_end - t) / HOUR)
            t = piece_end
        return total

    def usual_day(self, weekday: int) -> Expected:
        """A usual whole day on this weekday."""
        total = NOTHING
        for e in self.rates[weekday]:
            total += e
        return total


def robust_mean(values: Sequence[float]) -> float:
    """The mean without the single highest and lowest value once there are four or more (a promotion, an
    outage), the plain mean below that, 0 for nothing."""
    if not values:
        return 0.0
    if len(values) < 4:
        return sum(values) / len(values)
    ordered = sorted(values)
    return sum(ordered[1:-1]) / (len(ordered) - 2)


def main_currency(counts: Iterable[HourCount]) -> str:
    """The currency with the most revenue (ties by code); USD for an empty history."""
    totals: dict[str, int] = {}
    for c in counts:
        totals[c.currency] = totals.get(c.currency, 0) + c.revenue
    return min(totals, key=lambda code: (-totals[code], code)) if totals else "USD"


def _grid(counts: Iterable[HourCount], days: Sequence[dt.date],
          currency: str) -> dict[dt.date, list[Expected]]:
    """Observed orders and revenue per day and hour, zero-filled."""
    grid = {d: [NOTHING] * HOURS for d in days}
    for c in counts:
        if c.day in grid:
            grid[c.day][c.hour] += Expected(c.orders, c.revenue if c.currency == currency else 0)
    return grid


def _cells(samples: Sequence[Sequence[Expected]]) -> list[Expected]:
    """The robust mean per hour over the given days."""
    return [Expected(robust_mean([day[h].orders for day in samples]), robust_mean([day[h].revenue for day in samples]))
            for h in range(HOURS)]


def build(counts: Iterable[HourCount], *, today: dt.date, first_day: dt.date | None,
          params: RhythmParams) -> Rhythm | None:
    """The rhythm from the whole days before `today`, or None with fewer than `min_weeks` weeks of history."""
    available = (today - first_day).days // 7 if first_day is not None else 0
    weeks = min(params.weeks, available)
    if weeks < max(params.min_weeks, 1):
        return None
    counts = list(counts)
    currency = main_currency(counts)
    days = [today - dt.timedelta(days=n) for n in range(1, 7 * weeks + 1)]
    grid = _grid(counts, days, currency)
    by_weekday = [_cells([grid[d] for d in days if d.weekday() == w]) for w in range(7)]
    profile = _cells(list(grid.values()))
    day_orders = [sum(e.orders for e in cells) for cells in by_weekday]
    mean_day = sum(day_orders) / 7 or 1.0
    n, k = float(weeks), params.shrink_weeks
    rates = []
    for w, cells in enumerate(by_weekday):
        level = day_orders[w] / mean_day  # the prior keeps the weekday's level, takes the profile's shape
        rates.append(tuple((cells[h].scaled(n) + profile[h].scaled(k * level)).scaled(1 / (n + k))
                           for h in range(HOURS)))
    return Rhythm(currency=currency, weeks=weeks, rates=tuple(rates))
