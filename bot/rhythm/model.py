"""The expected-rate model: the mean per local weekday and hour over the last weeks (outlier days left out),
shrunk toward the all-days hourly profile as much as its counts are thin.
Pure: history in, a frozen Rhythm out; no database, no clock."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from bot.currency import gross_in
from bot.periods import local_midnight
from queries.rhythm import HourCount

HOURS: Final = 24
HOUR: Final = dt.timedelta(hours=1)
MIN_MEDIAN: Final = 20  # sales a day before a day at half or twice the median is an outlier, not noise
MIN_SAMPLES: Final = 3  # same-weekday days for their own median to judge outliers: one odd day can't be it
# A stretch this long without a sale is no trading (a live test order long before launch, a closed fortnight):
# the history starts again at the next sale, so its empty days are not read as usual days.
MAX_GAP: Final = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RhythmParams:
    """How much history the model reads and how far it trusts a single weekday's hour."""

    weeks: int = 8  # same-weekday samples per cell; older weeks say less about today's store
    min_weeks: int = 2  # fewer whole weeks of history: no rhythm, the fixed rules apply
    # How far a weekday's hour typically strays from the all-days hourly profile (scaled to that weekday's
    # level), relative: sets how much a cell's own days count against the profile (see `shrunk`).
    spread: float = 0.25


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


def hour_pieces(start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> Iterator[tuple[dt.datetime, float]]:
    """[start, end) cut at every local hour's start: each piece's local start and its real length in hours."""
    t = start
    while t < end:
        local = t.astimezone(tz)
        # Zone offsets are whole minutes, so the next local hour starts this far away in real time.
        to_next = dt.timedelta(minutes=60 - local.minute, seconds=-local.second, microseconds=-local.microsecond)
        piece_end = min(t + to_next, end)
        yield local, (piece_end - t) / HOUR
        t = piece_end


def hour_lengths(day: dt.date, tz: ZoneInfo | None) -> list[float]:
    """How long each local hour of `day` really lasts, in hours: 0 for the hour a spring-forward skips, 2 for the
    one a fall-back repeats (halves around half-hour changes); every hour lasts one without a zone."""
    if tz is None:
        return [1.0] * HOURS
    lengths = [0.0] * HOURS
    for local, hours in hour_pieces(local_midnight(day, tz), local_midnight(day + dt.timedelta(days=1), tz), tz):
        lengths[local.hour] += hours
    return lengths


@dataclass(frozen=True, slots=True)
class Rhythm:
    """Expected orders and revenue per hour, by local weekday (0 = Monday) and local hour."""

    # Revenue is in this currency: the store currency (every currency's orders, as /sales counts them in it), or
    # without one the store's largest (its orders alone). Orders count every currency either way.
    currency: str
    weeks: int  # weeks of history behind each cell
    rates: tuple[tuple[Expected, ...], ...]  # rates[weekday][hour], per hour

    def rate_at(self, t: dt.datetime, tz: ZoneInfo) -> Expected:
        """The expected rate per hour at the local hour of `t`."""
        local = t.astimezone(tz)
        return self.rates[local.weekday()][local.hour]

    def between(self, start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> Expected:
        """Expected orders and revenue in [start, end), hour piece by local hour piece (DST-aware)."""
        total = NOTHING
        for local, hours in hour_pieces(start, end, tz):
            total += self.rates[local.weekday()][local.hour].scaled(hours)
        return total

    def usual_day(self, weekday: int) -> Expected:
        """A usual whole day on this weekday."""
        total = NOTHING
        for e in self.rates[weekday]:
            total += e
        return total


def typical_days(days: Sequence[dt.date], totals: dict[dt.date, float], *, others: float) -> list[dt.date]:
    """The days without whole-day outliers (a promotion, an outage): outside half to twice the median total,
    once the median is large enough (MIN_MEDIAN) for Poisson noise alone not to stray that far. With fewer than
    MIN_SAMPLES days their median is no order statistic (of two, their mean: Black Friday's 400 and a normal 100
    make 250, and the normal day looks the outlier), so `others`, the median of every day read, stands in; when
    that leaves none, the weekday simply runs at another level and keeps its days."""
    median = statistics.median(totals[d] for d in days) if len(days) >= MIN_SAMPLES else others
    if median < MIN_MEDIAN:
        return list(days)
    return [d for d in days if median / 2 <= totals[d] <= median * 2] or list(days)


def main_currency(counts: Iterable[HourCount]) -> str:
    """The currency with the most orders (then revenue, then code); USD for an empty history. Not by revenue first:
    minor units of two currencies do not compare (₩50,000 is about $36), as bot/answers/json_views.py picks too."""
    totals: dict[str, tuple[int, int]] = {}
    for c in counts:
        orders, revenue = totals.get(c.currency, (0, 0))
        totals[c.currency] = (orders + c.orders, revenue + c.revenue)
    return min(totals, key=lambda code: (-totals[code][0], -totals[code][1], code)) if totals else "USD"


def _revenue(c: HourCount, currency: str, *, store: bool) -> int:
    """An hour's revenue in the rhythm's currency: in the store currency as bot.currency counts it, or the
    currency's own orders."""
    if store:
        return gross_in(currency, c.currency, revenue=c.revenue, settled_revenue=c.settled_revenue,
                        settled=c.settled)
    return c.revenue if c.currency == currency else 0


def _grid(counts: Iterable[HourCount], days: Sequence[dt.date], currency: str, *,
          store: bool) -> dict[dt.date, list[Expected]]:
    """Observed orders and revenue per day and hour, zero-filled."""
    grid = {d: [NOTHING] * HOURS for d in days}
    for c in counts:
        if c.day in grid:
            grid[c.day][c.hour] += Expected(c.orders, _revenue(c, currency, store=store))
    return grid


def trading_start(counts: Iterable[HourCount], *, today: dt.date, first_day: dt.date,
                  params: RhythmParams) -> tuple[dt.date, int] | None:
    """The first day of the store's continuous trading up to today, and the local hour of its first sale there
    (hours before it were not trading, not silence); None without a sale in the weeks read. The first sale ever
    alone is no evidence: a live test order 60 days before launch would make 3 days of trading "8 weeks"."""
    window = today - dt.timedelta(weeks=params.weeks)
    first_hours: dict[dt.date, int] = {}
    for c in counts:
        if c.orders > 0 and max(window, first_day) <= c.day < today:
            first_hours[c.day] = min(c.hour, first_hours.get(c.day, c.hour))
    if not first_hours:
        return None
    # Before the window nothing is known: trading up to it is assumed, its empty days inside it are seen.
    start, previous = first_day, first_day if first_day >= window else window - dt.timedelta(days=1)
    for day in sorted(first_hours):
        if day - previous > MAX_GAP:
            start = day
        previous = day
    return start, first_hours.get(start, 0)


def _means(samples: Sequence[Sequence[Expected]],
           lengths: Sequence[Sequence[float]]) -> tuple[list[Expected], list[float]]:
    """The rate per hour over the given days, each day's hour weighted by its real length (a skipped hour counts
    for nothing, a repeated one as two hours), and how many hours of history stand behind each."""
    rates, exposure = [], []
    for h in range(HOURS):
        hours = sum(day[h] for day in lengths)
        total = sum((day[h] for day in samples), NOTHING)
        rates.append(total.scaled(1 / hours) if hours else NOTHING)
        exposure.append(hours)
    return rates, exposure


def shrunk(cell: Expected, prior: Expected, *, n: float, spread: float) -> Expected:
    """Empirical Bayes for a Poisson cell of `n` hour-long days of history (a repeated hour counts twice): the
    prior counts as 1 / (spread² · prior rate) pseudo-days, so a busy hour trusts its own days and a sparse one
    (0.3 sales an hour, 8 days) mostly the profile."""
    pseudo = 1 / (spread ** 2 * max(prior.orders, 1e-6))
    return (cell.scaled(n) + prior.scaled(pseudo)).scaled(1 / (n + pseudo))


def build(counts: Iterable[HourCount], *, today: dt.date, first_day: dt.date | None,
          params: RhythmParams, store_currency: str | None = None, tz: ZoneInfo | None = None) -> Rhythm | None:
    """The rhythm from the whole days before `today` in `tz` (None: every local hour lasts an hour), or None with
    fewer than `min_weeks` weeks of continuous trading (see `trading_start`; `first_day`: the first sale ever);
    its revenue in `store_currency` when there is one."""
    counts = list(counts)
    trading = trading_start(counts, today=today, first_day=first_day, params=params) if first_day is not None else None
    if trading is None:
        return None
    start, opened = trading
    weeks = min(params.weeks, (today - start).days // 7)
    if weeks < max(params.min_weeks, 1):
        return None
    currency = store_currency or main_currency(counts)
    days = [today - dt.timedelta(days=n) for n in range(1, 7 * weeks + 1)]
    grid = _grid(counts, days, currency, store=store_currency is not None)
    lengths = {d: hour_lengths(d, tz) for d in days}
    if start in lengths:  # the first day's hours before its first sale: not open yet, no history either way
        lengths[start][:opened] = [0.0] * opened
    totals = {d: sum(e.orders for e in grid[d]) for d in days}
    everyday = statistics.median(totals.values())
    kept = [typical_days([d for d in days if d.weekday() == w], totals, others=everyday) for w in range(7)]
    by_weekday = [_means([grid[d] for d in chosen], [lengths[d] for d in chosen]) for chosen in kept]
    profile, _ = _means([grid[d] for chosen in kept for d in chosen], [lengths[d] for chosen in kept for d in chosen])
    day_orders = [sum(e.orders for e in cells) for cells, _ in by_weekday]
    mean_day = sum(day_orders) / 7 or 1.0
    rates = []
    for w, (cells, hours) in enumerate(by_weekday):
        level = day_orders[w] / mean_day  # the prior keeps the weekday's level, takes the profile's shape
        rates.append(tuple(shrunk(cells[h], profile[h].scaled(level), n=hours[h], spread=params.spread)
                           for h in range(HOURS)))
    return Rhythm(currency=currency, weeks=weeks, rates=tuple(rates))
