"""Per-seat tiered prices count in MRR: webhooks carry no `tiers`, so with STRIPE_API_KEY the discounts job reads
GET /v1/prices/{id}?expand[]=tiers from a fake Stripe on 127.0.0.1 (once per price) and recomputes the snapshot;
without a key they are left out. Stripe's own MRR leaves out only metered prices."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.stripe import tiers
from bot.stripe.discount_job import DiscountJob
from queries import mrr
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.settled_store import resource
from tests.test_subscriptions import post, story_event

NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.UTC)
T0 = int((NOW - dt.timedelta(days=10)).timestamp())
# Volume: $10.00 a seat up to 5, $8.00 from 6 with $5.00 flat, $6.005 from 11 with $10.00 flat (decimal strings).
VOLUME: list[dict[str, Any]] = [{"up_to": 5, "unit_amount": 1000, "flat_amount": None},
          {"up_to": 10, "unit_amount": 800, "flat_amount": 500},
          {"up_to": None, "unit_amount": None, "unit_amount_decimal": "600.5", "flat_amount_decimal": "1000"}]
# Graduated: the first 5 seats $10.00 each plus $20.00 flat, the next 5 $8.00 plus $3.00 flat, the rest $5.00.
GRADUATED: list[dict[str, Any]] = [{"up_to": 5, "unit_amount": 1000, "flat_amount": 2000},
             {"up_to": 10, "unit_amount": 800, "flat_amount": 300},
             {"up_to": None, "unit_amount": 500, "flat_amount": 0}]


def tier(raw: dict[str, Any]) -> dict[str, Any]:
    """A Price tier as the API returns it: integers with their `*_decimal` strings."""
    out = {"up_to": raw["up_to"], "flat_amount": raw.get("flat_amount"), "unit_amount": raw.get("unit_amount")}
    for name in ("flat_amount", "unit_amount"):
        out[f"{name}_decimal"] = raw.get(f"{name}_decimal") or (str(raw[name]) if raw.get(name) is not None else None)
    return out


def tiered_price(price_id: str, mode: str, rows: list[dict[str, Any]], *, currency: str = "usd") -> dict[str, Any]:
    """A tiered per-seat Price as GET /v1/prices/{id} holds it (stripe/openapi fixtures3.json, patched)."""
    p = resource("price")
    p.update(id=price_id, billing_scheme="tiered", tiers_mode=mode, unit_amount=None, unit_amount_decimal=None,
             transform_quantity=None, currency=currency, nickname="Seats", tiers=[tier(r) for r in rows])
    return p


def seats_event(kind: str, sub_id: str, price: dict[str, Any], quantity: int, *, at: int, n: int,
                was: int | None = None) -> dict[str, Any]:
    """A basil customer.subscription.* event (the story's payload) on `quantity` seats of `price`, its tiers left
    out as in every webhook; `was` the quantity previous_attributes names."""
    evt = copy.deepcopy(story_event("basil", "1_created"))
    obj = evt["data"]["object"]
    item = obj["items"]["data"][0]
    sent = {k: v for k, v in price.items() if k != "tiers"}
    item.update(price=sent, quantity=quantity, id=f"si_{sub_id}")
    item["plan"].update(id=price["id"], billing_scheme="tiered", tiers_mode=price["tiers_mode"], amount=None,
                        amount_decimal=None, nickname="Seats")
    obj.update(id=sub_id, customer=f"cus_{sub_id}", created=T0, start_date=T0)
    evt.update(id=f"evt_tiers_{sub_id}_{n}", type=f"customer.subscription.{kind}", created=at)
    if was is not None:
        old = copy.deepcopy(obj["items"])
        old["data"][0]["quantity"] = was
        evt["data"]["previous_attributes"] = {"items": old}
    return evt


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API."""
    stripe = await FakeStripe().start()
    yield stripe
    await stripe.stop()


async def mrr_of(bot: Bot, sub_id: str) -> int:
    """The subscription's MRR now, in minor units a month."""
    return await bot.deps.pool.fetchval("SELECT mrr_minor(mrr_units) FROM subscriptions WHERE id = $1", sub_id)


@pytest.mark.parametrize(("mode", "rows", "expected"), [
    ("volume", VOLUME, {0: 0, 1: 1000, 5: 5000, 6: 5300, 10: 8500, 11: 7605.5, 20: 13010}),
    ("graduated", GRADUATED, {0: 0, 1: 3000, 5: 7000, 6: 8100, 10: 11300, 11: 11800, 20: 16300})])
def test_tiers_price_a_quantity_at_and_around_each_edge(mode: str, rows: list[dict[str, Any]],
                                                        expected: dict[int, float]) -> None:
    """Volume: every seat at the tier holding the quantity, plus that tier's flat amount; graduated: each seat at
    its own tier, plus the flat amount of every tier reached. `up_to` is inclusive."""
    found = tiers.of_price(tiered_price("price_x", mode, rows))
    assert found is not None
    assert {q: tiers.total(found, q) for q in expected} == expected


async def test_a_volume_tiered_seat_price_counts_in_mrr(dsn: str, fake_slack: FakeSlack, fake: FakeStripe) -> None:
    """The reviewer's case: 10 seats on a volume price ($8.00 a seat from 6 seats) bill $80.00 a month. Webhooks
    carry no `tiers`, so the MRR stored at intake leaves the item out; the job reads the price's tiers once and
    counts it — for a second subscriber on the same price with no second read."""
    price = tiered_price("price_seats_volume", "volume", [{"up_to": 5, "unit_amount": 1000},
                                                          {"up_to": None, "unit_amount": 800}])
    fake.prices[price["id"]] = price
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        await post(bot, seats_event("created", "sub_1TIERED", price, 10, at=T0, n=1))
        await post(bot, seats_event("created", "sub_2TIERED", price, 3, at=T0, n=1))
        assert await DiscountJob(bot.deps).tick() == 2
        got = await bot.deps.pool.fetchrow("SELECT status, mrr_minor(mrr_units) AS mrr, plan FROM subscriptions "
                                           "WHERE id = 'sub_1TIERED'")
        assert (got["status"], got["mrr"], got["plan"]) == ("active", 8000, "Seats × 10")
        assert await mrr_of(bot, "sub_2TIERED") == 3000
        reads = fake.served("/v1/prices/price_seats_volume")
        assert len(reads) == 1 and reads[0].params == [("expand[]", "tiers")]


async def test_graduated_seats_with_flat_amounts_and_a_seat_change(dsn: str, fake_slack: FakeSlack,
                                                                  fake: FakeStripe) -> None:
    """6 seats graduated ($50 + $20 flat + $8 + $3 flat = $81.00), then 11 ($118.00): both snapshots and the MRR
    before the change are recomputed, so the ledger has $81.00 new and $37.00 expansion."""
    price = tiered_price("price_seats_grad", "graduated", GRADUATED)
    fake.prices[price["id"]] = price
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        await post(bot, seats_event("created", "sub_1GRAD", price, 6, at=T0, n=1))
        await post(bot, seats_event("updated", "sub_1GRAD", price, 11, at=T0 + 86400, n=2, was=6))
        assert await mrr_of(bot, "sub_1GRAD") == 0  # left out until its tiers are read
        assert await DiscountJob(bot.deps).tick() == 1
        assert await mrr_of(bot, "sub_1GRAD") == 11800
        rows = await bot.deps.pool.fetch("SELECT mrr_minor(mrr_units) AS mrr, mrr_minor(before_mrr_units) AS before, "
                                         "discounts FROM subscription_events WHERE subscription_id = 'sub_1GRAD' "
                                         "ORDER BY at")
        assert [(r["mrr"], r["before"], r["discounts"]) for r in rows] == [(8100, None, "applied"),
                                                                          (11800, 8100, "applied")]
        got = (await mrr.summary(bot.deps.pool, now=NOW, since=NOW - dt.timedelta(days=30))).currencies[0]
        assert (got.mrr, got.new, got.expansion) == (11800, 8100, 3700)
        assert len(fake.served("/v1/prices/price_seats_grad")) == 1


async def test_when_stripe_fails_the_seats_wait_and_are_counted_on_a_later_run(dsn: str, fake_slack: FakeSlack,
                                                                              fake: FakeStripe) -> None:
    """A 500 backs the subscription off (its MRR still leaves the seats out); the next run after the back-off reads
    the tiers. A price Stripe no longer has (a deleted legacy Plan, 404) stays left out, marked missing."""
    price = tiered_price("price_seats_volume", "volume", VOLUME)
    fake.prices[price["id"]] = price
    gone = tiered_price("plan_deleted", "volume", VOLUME)
    clock = FakeClock(NOW)
    async with start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        await post(bot, seats_event("created", "sub_1FAIL", price, 6, at=T0, n=1))
        fake.fail_next(1, status=500)
        assert await DiscountJob(bot.deps).tick() == 0
        assert await mrr_of(bot, "sub_1FAIL") == 0
        assert await DiscountJob(bot.deps).tick() == 0  # backing off: not asked again yet
        clock.advance(minutes=5)
        assert await DiscountJob(bot.deps).tick() == 1
        assert await mrr_of(bot, "sub_1FAIL") == 5300
        await post(bot, seats_event("created", "sub_1GONE", gone, 6, at=T0, n=1))
        assert await DiscountJob(bot.deps).tick() == 1
        assert await mrr_of(bot, "sub_1GONE") == 0
        assert await bot.deps.pool.fetchval(
            "SELECT discounts FROM subscription_events WHERE subscription_id = 'sub_1GONE'") == "missing"


async def test_without_a_key_tiered_seats_are_left_out(dsn: str, fake_slack: FakeSlack, fake: FakeStripe) -> None:
    """Without STRIPE_API_KEY nothing is read: the subscription is active, named by its plan, its MRR leaves the
    tiered item out."""
    price = tiered_price("price_seats_volume", "volume", VOLUME)
    fake.prices[price["id"]] = price
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STRIPE_API_URL=fake.url) as bot:
        await post(bot, seats_event("created", "sub_1NOKEY", price, 10, at=T0, n=1))
        assert await DiscountJob(bot.deps).tick() is None
        got = await bot.deps.pool.fetchrow("SELECT status, mrr_units, plan FROM subscriptions WHERE id = 'sub_1NOKEY'")
        assert (got["status"], got["mrr_units"], got["plan"]) == ("active", 0, "Seats × 10")
        assert fake.requests == []
