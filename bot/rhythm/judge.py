"""The rhythm rules' judgments, pure: is the gap since the last sale, or today's count so far, improbable given
the store's rhythm? Parameters are frozen dataclasses (change them with dataclasses.replace)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from bot.periods import local_midnight
from bot.rhythm.model import Rhythm

DAYS_PER_WEEK: Final = 7
MONTH_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class StoppedParams:
    """"Sales stopped": P(no sale during the gap) below alpha, in an hour that usually sells."""

    alpha: float = 0.001  # the most improbable a natural gap may be...
    # ...tightened so that the store's own number of gaps per month yields this many false alarms at most:
    # a store with 150,000 sales a month sees a 1-in-1,000 gap 150 times (bench/rhythm.py measures it).
    false_alarms_per_30_days: float = 0.3
    # Quiet hours never fire: this hour must usually bring at least this many sales, and at least this share
    # of the weekday's busiest hour (a small store's afternoon counts, its night does not).
    min_per_hour: float = 0.25
    min_share_of_peak: float = 0.5


@dataclass(frozen=True, slots=True)
class LowTodayParams:
    """"Sales unusually low today": today's count so far in the Poisson lower tail, and well below usual."""

    # Judged every check all day long, so a day has many chances to dip: 1e-4 keeps a normal month quiet.
    alpha: float = 0.0001
    min_expected: float = 10.0  # not before this many sales were to be expected today
    max_share: float = 0.5  # and only when today has at most this share of them (days vary beyond Poisson)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rhythm rule's condition holds: what to say, and the measured value; `opens` False when it is not one to
    page about at this hour (it keeps an alert already open, and opens none)."""

    summary: str
    value: float
    opens: bool = True


def duration(seconds: float) -> str:
    """A short duration: "12 s", "1 min 30 s", "38 min", "2 h 05 min"."""
    if seconds < 60:
        return f"{max(round(seconds), 1)} s"
    if seconds < 600 and (part := round(seconds) % 60):
        return f"{round(seconds) // 60} min {part:02d} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"


def poisson_cdf(k: int, mu: float) -> float:
    """P(X ≤ k) for X ~ Poisson(mu), summed downward from k in log space (no underflow for large mu)."""
    if k < 0:
        return 0.0
    if mu <= 0:
        return 1.0
    log_term = -mu + k * math.log(mu) - math.lgamma(k + 1)
    term, total = 1.0, 1.0
    for i in range(k, 0, -1):
        term *= i / mu
        total += term
        if term < 1e-17 * total:
            break
    return min(1.0, math.exp(log_term) * total)


def watched(rhythm: Rhythm, params: StoppedParams, *, weekday: int, hour: int) -> bool:
    """Whether "sales stopped" judges this local hour: it usually sells enough, absolutely and for that day."""
    day = rhythm.rates[weekday]
    rate = day[hour].orders
    return rate >= params.min_per_hour and rate >= params.min_share_of_peak * max(e.orders for e in day)


def gap_threshold(rhythm: Rhythm, params: StoppedParams) -> float:
    """The expected number of sales a gap must span to fire: -ln(alpha), alpha tightened for busy stores."""
    eligible = sum(rhythm.rates[w][h].orders for w in range(DAYS_PER_WEEK) for h in range(24)
                   if watched(rhythm, params, weekday=w, hour=h))
    per_month = eligible * MONTH_DAYS / DAYS_PER_WEEK
    alpha = min(params.alpha, params.false_alarms_per_30_days / per_month) if per_month else params.alpha
    return -math.log(alpha)


def stopped(rhythm: Rhythm, params: StoppedParams, *, last_sale: dt.datetime | None, now: dt.datetime,
            tz: ZoneInfo) -> Verdict | None:
    """"No sale for 38 min; at this hour a sale usually comes every 4 min", or None. Only a watched hour opens an
    alert; after it the gap still holds (no sale has come), so an alert it opened stays open into quiet hours
    rather than reading as resolved."""
    local = now.astimezone(tz)
    if last_sale is None or rhythm.between(last_sale, now, tz).orders <= gap_threshold(rhythm, params):
        return None
    per_hour, gap = rhythm.rate_at(now, tz).orders, (now - last_sale).total_seconds()
    usual = f"; at this hour a sale usually comes every {duration(3600 / per_hour)}" if per_hour > 0 else ""
    return Verdict(f"No sale for {duration(gap)}{usual}", gap / 60,
                   opens=watched(rhythm, params, weekday=local.weekday(), hour=local.hour))


def low_today(rhythm: Rhythm, params: LowTodayParams, *, orders: int, now: dt.datetime,
              tz: ZoneInfo) -> Verdict | None:
    """"12 sales today by 15:00; a usual Tuesday has 41 by then", or None."""
    local = now.astimezone(tz)
    expected = rhythm.between(local_midnight(local.date(), tz), now, tz).orders
    if expected < params.min_expected or orders > params.max_share * expected:
        return None
    if poisson_cdf(orders, expected) >= params.alpha:
        return None
    return Verdict(f"{orders} sales today by {local:%H:%M}; a usual {local:%A} has {round(expected)} by then"
                   f" ({orders / expected:.0%} of usual)", orders / expected)
