"""Monthly recurring revenue of one subscription, from its items: price × quantity, normalised to a month.

A package price (`transform_quantity`: so much per `divide_by` units) bills whole packages, the quantity divided
and rounded up or down as the price says (https://docs.stripe.com/api/prices/object#price_object-transform_quantity).
Pure arithmetic on exact fractions. The conventions are the ones Baremetrics and ChartMogul document: a yearly price
is divided by 12, a weekly one multiplied by 52/12, a daily one by 365/12; `interval_count` divides (every 3 months
= a third a month); forever and still-running repeating coupons are taken off, one-off (`once`) coupons are not
(they change one invoice, not the run rate); a trialing, incomplete, paused, unpaid or ended subscription counts 0
(a trial is not revenue yet; it counts from the moment it converts).
https://docs.stripe.com/api/subscriptions/object · https://docs.stripe.com/api/coupons/object

A subscription's MRR is kept in MRR units, PER_MINOR (12,000,000) to a minor unit a month: its amount a year in
millionths of a minor unit. That is exact for a price a month, a year, every 2, 3, 4 or 6 months, a week, every 2,
4, 13 or 26 weeks, or a day (a year is 12 months, 52 weeks, 365 days), a percentage off with up to two decimals, an
amount off spread over the year, and (without a percentage off) a unit_amount_decimal of up to six decimals. Any
other (every 7 months, 3 weeks or 3 years) is rounded half up to a millionth of a minor unit a year: off by at most
half of one per subscription. Stored MRR is in these units (migration 0046), summed as it is, and rounded once,
half up, to a minor unit where it is shown (`minor` here, mrr_minor() in SQL): rounding each subscription to a cent
before summing lost a third of a cent per $100-a-year subscriber, so three of them made $24.99 a month.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

# MRR units to one minor unit a month: a year's amount in millionths of a minor unit (migration 0046).
PER_MINOR: Final = 12_000_000
# Months in one interval of each unit.
MONTHS_PER: Final = {"day": Fraction(12, 365), "week": Fraction(12, 52), "month": Fraction(1), "year": Fraction(12)}
# Statuses whose subscription is paying: past_due is still a customer until Stripe gives up (then unpaid/canceled).
COUNTED: Final = frozenset({"active", "past_due"})


@dataclass(frozen=True, slots=True)
class Coupon:
    """A discount as MRR sees it: a percentage or a fixed amount per invoice, and whether it still applies."""

    percent_off: Fraction | None = None
    amount_off: int | None = None  # minor units of the subscription's currency, per invoice
    duration: str = "forever"  # forever | repeating | once
    end: dt.datetime | None = None  # a repeating coupon's last day

    def applies(self, at: dt.datetime) -> bool:
        """Whether it lowers the run rate at `at`: forever, or repeating and not yet over; never `once`."""
        if self.duration == "forever":
            return True
        return self.duration == "repeating" and (self.end is None or self.end > at)


@dataclass(frozen=True, slots=True)
class Item:
    """One subscription item: a recurring price and how many."""

    price_id: str
    name: str
    unit_amount: Fraction  # minor units per interval (unit_amount_decimal may carry fractions of a cent)
    interval: str  # day | week | month | year
    interval_count: int = 1
    quantity: int = 1
    coupons: tuple[Coupon, ...] = ()  # the item's own discounts
    package: int = 1  # transform_quantity.divide_by: unit_amount is the price of this many units
    round_up: bool = True  # transform_quantity.round: a part package is billed whole (up) or not at all (down)

    @property
    def billed(self) -> int:
        """The quantity Stripe bills: the units, or the packages they make."""
        return billed_quantity(self.quantity, package=self.package, round_up=self.round_up)


def billed_quantity(quantity: int, *, package: int = 1, round_up: bool = True) -> int:
    """How many of a price's units `quantity` is billed as: packages of `package`, part packages rounded."""
    if package <= 1:
        return quantity
    whole, part = divmod(quantity, package)
    return whole + 1 if part and round_up else whole


def monthly(amount: Fraction, *, interval: str, interval_count: int = 1) -> Fraction:
    """An amount charged every `interval_count` `interval`s, as an amount a month."""
    months = MONTHS_PER.get(interval)
    if months is None or interval_count < 1:
        raise ValueError(f"not a recurring interval: every {interval_count} {interval}")
    return amount / (months * interval_count)


def _discounted(amount: Fraction, coupons: Sequence[Coupon], *, months: Fraction, at: dt.datetime) -> Fraction:
    """`amount` a month after the coupons that apply at `at`; an amount_off per invoice is spread over `months`."""
    for c in coupons:
        if not c.applies(at):
            continue
        if c.percent_off is not None:
            amount -= amount * c.percent_off / 100
        if c.amount_off is not None:
            amount -= Fraction(c.amount_off) / months
    return max(amount, Fraction(0))


def item_mrr(item: Item, *, at: dt.datetime) -> Fraction:
    """The exact monthly amount of one item, its own coupons applied."""
    months = MONTHS_PER[item.interval] * item.interval_count
    gross = monthly(item.unit_amount * item.billed, interval=item.interval, interval_count=item.interval_count)
    return _discounted(gross, item.coupons, months=months, at=at)


def subscription_mrr(items: Sequence[Item], coupons: Sequence[Coupon] = (), *, at: dt.datetime) -> int:
    """The MRR of these items under the subscription's coupons, in MRR units (PER_MINOR to a minor unit; an amount
    finer than one is rounded half up)."""
    if not items:
        return 0
    total = sum((item_mrr(i, at=at) for i in items), Fraction(0))
    # An amount_off is per invoice: spread over the shortest item interval, how often invoices are issued (one
    # subscription may mix monthly and yearly items since 2025-07-30.basil); the items' order does not matter.
    months = min(MONTHS_PER[i.interval] * i.interval_count for i in items)
    total = _discounted(total, coupons, months=months, at=at)
    return int(total * PER_MINOR + Fraction(1, 2)) if total > 0 else 0


def counted_mrr(status: str, items: Sequence[Item], coupons: Sequence[Coupon] = (), *, at: dt.datetime) -> int:
    """The MRR a subscription in `status` adds to the store's, in MRR units: its items' MRR while paying, else 0."""
    return subscription_mrr(items, coupons, at=at) if status in COUNTED else 0


def minor(units: int) -> int:
    """MRR units (one subscription's, or a sum, or a change) in minor units a month, rounded once: half up, a
    change down by as much as one up (half away from zero), as mrr_minor() in SQL (migration 0046)."""
    whole = (abs(units) + PER_MINOR // 2) // PER_MINOR
    return whole if units >= 0 else -whole
