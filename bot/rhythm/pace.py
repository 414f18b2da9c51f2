"""Today's pace, pure: what today is on course to end at, against a usual day of the same weekday."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from bot.periods import local_midnight
from bot.rhythm.model import Rhythm

# How strongly the day so far moves the projection of the rest: the day's own ratio to usual counts as
# if it were measured against this share of a usual day on top (early in the morning the rest stays usual).
PRIOR_SHARE: Final = 0.25


@dataclass(frozen=True, slots=True)
class Pace:
    """Today so far and projected to midnight, against a usual day (revenue in minor units of `currency`)."""

    currency: str
    weekday: str  # "Saturday"
    orders: int
    revenue: int
    projected_orders: int
    projected_revenue: int
    usual_orders: int
    usual_revenue: int
    # Revenue counts `currency`'s orders alone while others sold too (no store currency to count them in).
    one_currency_of_several: bool = False


def _projected(actual: float, expected_so_far: float, rest: float, usual: float) -> float:
    """The actual so far plus the rest of a usual day, scaled by how the day runs (shrunk toward usual)."""
    prior = PRIOR_SHARE * usual
    ratio = (actual + prior) / (expected_so_far + prior) if expected_so_far + prior > 0 else 1.0
    return actual + rest * ratio


def project(rhythm: Rhythm, *, orders: int, revenue: int, now: dt.datetime, tz: ZoneInfo,
            one_currency_of_several: bool = False) -> Pace:
    """Today's pace from what sold since local midnight (`revenue` in the rhythm's currency)."""
    day = now.astimezone(tz).date()
    start, end = local_midnight(day, tz), local_midnight(day + dt.timedelta(days=1), tz)
    so_far, rest = rhythm.between(start, now, tz), rhythm.between(now, end, tz)
    usual = so_far + rest  # this calendar day's hours: 23 or 25 on DST days
    return Pace(currency=rhythm.currency, weekday=f"{day:%A}", orders=orders, revenue=revenue,
                projected_orders=round(_projected(orders, so_far.orders, rest.orders, usual.orders)),
                projected_revenue=round(_projected(revenue, so_far.revenue, rest.revenue, usual.revenue)),
                usual_orders=round(usual.orders), usual_revenue=round(usual.revenue),
                one_currency_of_several=one_currency_of_several)
