"""MRR normalisation, by hand: intervals, counts, quantities, coupons, statuses and the payload shapes they come in
(each one subscription's, in minor units as shown: MRR is kept in finer units, migration 0046)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from bot.stripe import discounts
from bot.stripe.subscriptions import facts
from bot.subscriptions.mrr import Coupon, Item, counted_mrr, minor, monthly, subscription_mrr

AT = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
STORY = Path(__file__).parent / "fixtures" / "stripe" / "subscriptions"


def item(amount: int, interval: str = "month", count: int = 1, quantity: int = 1, *coupons: Coupon) -> Item:
    """A per-unit price item."""
    return Item(price_id=f"price_{amount}_{interval}", name="Plan", unit_amount=Fraction(amount), interval=interval,
                interval_count=count, quantity=quantity, coupons=coupons)


@pytest.mark.parametrize(("items", "expected"), [
    ([item(1900)], 1900),  # $19 a month
    ([item(19000, "year")], 1583),  # 19000 / 12 = 1583.33
    ([item(500, "week")], 2167),  # 500 × 52 / 12 = 2166.67
    ([item(100, "day")], 3042),  # 100 × 365 / 12 = 3041.67
    ([item(6000, "month", 3)], 2000),  # every 3 months: 6000 / 3
    ([item(1000, "week", 2, 3)], 6500),  # 3 seats every 2 weeks: 3000 × 52 / 12 / 2
    ([item(6, "year")], 1),  # 0.5 rounds half up
    ([item(1900), item(12000, "year")], 2900),  # 1900 + 12000 / 12
    ([item(1900, "month", 1, 0)], 0),  # quantity 0
], ids=["month", "year", "week", "day", "quarter", "seats-fortnight", "half-up", "two-items", "zero-seats"])
def test_items_normalise_to_a_month(items: list[Item], expected: int) -> None:
    """Year ÷ 12, week × 52/12, day × 365/12, interval_count divides, quantity multiplies; rounded once, half up."""
    assert minor(subscription_mrr(items, at=AT)) == expected


@pytest.mark.parametrize(("coupons", "expected"), [
    ((Coupon(percent_off=Fraction(25)),), 2250),  # 3000 − 25 %
    ((Coupon(amount_off=500),), 2500),  # 500 off each monthly invoice
    ((Coupon(percent_off=Fraction(50), duration="repeating", end=AT + dt.timedelta(days=1)),), 1500),
    ((Coupon(percent_off=Fraction(50), duration="repeating", end=AT - dt.timedelta(days=1)),), 3000),  # over
    ((Coupon(percent_off=Fraction(50), duration="once"),), 3000),  # one invoice, not the run rate
    ((Coupon(amount_off=5000),), 0),  # never below zero
    ((Coupon(percent_off=Fraction("12.5")),), 2625),
], ids=["25pct", "500-off", "repeating-running", "repeating-over", "once", "floor", "12.5pct"])
def test_coupons_that_apply_lower_the_mrr(coupons: tuple[Coupon, ...], expected: int) -> None:
    """Forever and running repeating coupons apply; once and ended repeating ones do not."""
    assert minor(subscription_mrr([item(1000, "month", 1, 3)], coupons, at=AT)) == expected


def test_an_amount_off_on_a_yearly_plan_is_spread_over_the_year() -> None:
    """500 off a 12000 yearly invoice is 1000 − 500/12 = 958.33 a month."""
    assert minor(subscription_mrr([item(12000, "year")], (Coupon(amount_off=500),), at=AT)) == 958


def test_an_items_own_coupon_applies_to_that_item_only() -> None:
    """20 % off the first item (1900 → 1520), none on the second (1000)."""
    assert minor(subscription_mrr([item(1900, "month", 1, 1, Coupon(percent_off=Fraction(20))), item(1000)],
                                  at=AT)) == 2520


@pytest.mark.parametrize(("status", "expected"), [("active", 1900), ("past_due", 1900), ("trialing", 0),
                                                  ("incomplete", 0), ("unpaid", 0), ("canceled", 0), ("paused", 0)])
def test_only_paying_statuses_count(status: str, expected: int) -> None:
    """Active and past_due count; a trial, an unpaid first invoice, a paused or ended subscription do not."""
    assert minor(counted_mrr(status, [item(1900)], at=AT)) == expected


def test_an_interval_that_is_not_one_is_refused() -> None:
    """`monthly` refuses what is not a recurring interval."""
    with pytest.raises(ValueError, match="not a recurring interval"):
        monthly(Fraction(100), interval="fortnight")


def subscription(version: str = "basil") -> dict[str, Any]:
    """The story's created Subscription object of `version`."""
    raw = json.loads((STORY / version / "1_created.json").read_text("utf-8"))
    return copy.deepcopy(raw["data"]["object"])


@pytest.mark.parametrize(("version", "discount"), [
    ("basil", {"id": "di_1", "coupon": {"id": "HALF", "percent_off": 50, "duration": "forever"}}),
    ("clover", {"id": "di_1", "source": {"type": "coupon",
                                        "coupon": {"id": "HALF", "percent_off": 50, "duration": "forever"}}}),
])
def test_expanded_discounts_apply_in_basil_and_clover_shapes(version: str, discount: dict[str, Any]) -> None:
    """Basil's Discount.coupon and clover's Discount.source.coupon give the same MRR: 1900 − 50 % = 950."""
    obj = subscription(version)
    obj["discounts"] = [discount]
    assert minor(facts(obj, {}, AT).mrr) == 950


def test_discount_ids_alone_leave_the_mrr_undiscounted() -> None:
    """A webhook lists discounts as ids: their terms are unknown, so MRR is the items' (documented limit)."""
    obj = subscription()
    obj["discounts"] = ["di_1ABC"]
    assert minor(facts(obj, {}, AT).mrr) == 1900


def test_acacia_shapes_singular_discount_and_period_on_the_subscription() -> None:
    """Before basil: `discount` (one object, amount_off 400) and `current_period_end` on the subscription."""
    obj = subscription()
    obj.pop("discounts")
    obj["discount"] = {"coupon": {"amount_off": 400, "duration": "forever", "currency": "usd"}}
    obj["current_period_end"] = 1_750_000_000
    f = facts(obj, {}, AT)
    assert minor(f.mrr) == 1500 and f.current_period_end == dt.datetime.fromtimestamp(1_750_000_000, dt.UTC)


def test_acacia_sends_the_discount_twice_and_its_expanded_copy_is_read() -> None:
    """Before basil a subscription carries both the expanded legacy `discount` and the `discounts` list of ids,
    which names the same Discount: its coupon's terms count at once (the id alone left MRR undiscounted until the
    Discount was read back), and so do they when the coupon is removed (previous_attributes)."""
    obj = subscription()
    legacy = {"id": "di_1ACACIA", "object": "discount", "end": None,
              "coupon": {"id": "HALF", "percent_off": 50, "duration": "forever"}}
    obj["discount"], obj["discounts"] = legacy, ["di_1ACACIA"]
    assert minor(facts(obj, {}, AT).mrr) == 950
    removed = {**obj, "discount": None, "discounts": []}
    f = facts(removed, {"discount": legacy, "discounts": ["di_1ACACIA"]}, AT)
    assert f.previous_mrr is not None and (minor(f.previous_mrr), minor(f.mrr)) == (950, 1900)
    obj["discounts"] = ["di_1ACACIA", "di_1OTHER"]  # another Discount, by id only: still read back later
    assert [d if isinstance(d, str) else d["id"] for d in discounts.discounts_of(obj)] == ["di_1ACACIA", "di_1OTHER"]
    assert isinstance(discounts.discounts_of(obj)[0], dict)


def test_previous_attributes_give_the_old_plan_and_mrr() -> None:
    """An upgrade's previous_attributes.items are priced like the current ones: 1900 before, 5800 after."""
    raw = json.loads((STORY / "clover" / "3_upgraded.json").read_text("utf-8"))
    f = facts(raw["data"]["object"], raw["data"]["previous_attributes"], AT)
    assert f.previous_mrr is not None
    assert (minor(f.previous_mrr), minor(f.mrr), f.previous_plan, f.plan) == (1900, 5800, "Pro monthly",
                                                                              "Team monthly × 2")
