"""Discounts Stripe sends as ids (basil, clover): MRR is recomputed once a leased job reads them from a fake Stripe
on 127.0.0.1; without STRIPE_API_KEY nothing is read and /sales says MRR is before discounts."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.stripe.discount_job import DiscountJob
from queries import mrr
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.settled_store import resource

NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.UTC)
STORY = Path(__file__).parent / "fixtures" / "stripe" / "subscriptions"
SUB = "sub_1ProStory0001"
ITEM_END = int((NOW + dt.timedelta(days=80)).timestamp())


def coupon(coupon_id: str, **terms: Any) -> dict[str, Any]:
    """A Coupon as the API returns it (stripe/openapi fixtures3.json) with these terms."""
    c = resource("coupon")
    c.update({"id": coupon_id, "percent_off": None, "amount_off": None, "currency": None, "duration": "forever",
              "duration_in_months": None, **terms})
    return c


def discount(version: str, discount_id: str, c: dict[str, Any], *, end: int | None = None) -> dict[str, Any]:
    """A Discount: basil embeds its Coupon in `coupon`; clover names it by id in `source.coupon`."""
    d = resource("discount")
    d.update(id=discount_id, subscription=SUB, start=int((NOW - dt.timedelta(days=10)).timestamp()), end=end)
    if version == "basil":
        del d["source"]
        d["coupon"] = c
    else:
        d["source"] = {"type": "coupon", "coupon": c["id"]}
    return d


def story(version: str, name: str, when: dt.datetime, n: int) -> dict[str, Any]:
    """A story event sent at `when` with an id of its own."""
    evt = json.loads((STORY / version / f"{name}.json").read_text("utf-8"))
    evt["id"], evt["created"] = f"evt_discount_{version}_{n}", int(when.timestamp())
    return evt


def with_discounts(evt: dict[str, Any], sub: list[str], item: list[str], *, before_item: list[str] | None = None,
                   before_sub: list[str] | None = None) -> dict[str, Any]:
    """The event naming Discounts by id, as basil and clover webhooks do (previous_attributes too)."""
    evt = copy.deepcopy(evt)
    obj, prev = evt["data"]["object"], evt["data"].get("previous_attributes") or {}
    obj["discounts"] = sub
    obj["items"]["data"][0]["discounts"] = item
    if before_item is not None and "items" in prev:
        prev["items"]["data"][0]["discounts"] = before_item
    if before_sub is not None:
        prev["discounts"] = before_sub
    return evt


def serve(fake: FakeStripe, evt: dict[str, Any], found: dict[str, dict[str, Any]]) -> None:
    """The subscription as GET /v1/subscriptions/{id} shows it now, and its Discounts for `expand[]`."""
    fake.subscriptions[SUB] = copy.deepcopy(evt["data"]["object"])
    fake.discounts.update({d["id"]: d for d in found.values()})


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API."""
    stripe = await FakeStripe().start()
    yield stripe
    await stripe.stop()


async def summary(bot: Bot) -> mrr.MrrSummary:
    """MRR over the last 30 days, as /sales 30d reads it."""
    return await mrr.summary(bot.deps.pool, now=NOW, since=NOW - dt.timedelta(days=30))


async def sales_text(bot: Bot) -> str:
    """What `/sales 30d` shows, validated."""
    body = await bot.command("/sales", "30d")
    assert_valid_message(body)
    return json.dumps(body["blocks"], ensure_ascii=False)


def terms(version: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """25 % off forever (the subscription's) and 5.00 off for three months (the item's), as Discounts + Coupons."""
    pct, five = coupon("Pct25", percent_off=25.0), coupon("Five", amount_off=500, currency="usd",
                                                          duration="repeating", duration_in_months=3)
    return (discount(version, "di_1Pct25", pct), discount(version, "di_1Five", five, end=ITEM_END),
            {"Pct25": pct, "Five": five})


@pytest.mark.parametrize("version", ["basil", "clover"])
async def test_discounts_named_by_id_are_read_and_mrr_recomputed(dsn: str, fake_slack: FakeSlack,
                                                                 fake: FakeStripe, version: str) -> None:
    """Created ($19 less $5, less 25 % = $10.50) then upgraded ($58 less $5, less 25 % = $39.75): MRR before
    discounts at intake, then the hand-computed figures once the job has read the two Discounts; cached by id."""
    pct, five, coupons = terms(version)
    created = with_discounts(story(version, "1_created", NOW - dt.timedelta(days=10), 1), ["di_1Pct25"],
                             ["di_1Five"])
    upgraded = with_discounts(story(version, "3_upgraded", NOW - dt.timedelta(days=2), 2), ["di_1Pct25"],
                              ["di_1Five"], before_item=["di_1Five"])
    serve(fake, upgraded, {"p": pct, "f": five})
    fake.coupons.update(coupons if version == "clover" else {})
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STRIPE_API_KEY=API_KEY,
                         STRIPE_API_URL=fake.url) as bot:
        for evt in (created, upgraded):
            assert (await bot.stripe(evt)).status == 200
        before = await summary(bot)
        assert (before.currencies[0].mrr, before.discounts_unread) == (5800, 1)
        assert "MRR is before discounts for 1 subscription whose discounts Stripe sent as ids only" in \
            await sales_text(bot)
        assert await DiscountJob(bot.deps).tick() == 1
        after = await summary(bot)
        figures = after.currencies[0]
        assert (figures.mrr, figures.new, figures.expansion, after.discounts_unread) == (3975, 1050, 2925, 0)
        assert await bot.deps.pool.fetchval("SELECT mrr_minor(mrr_units) FROM subscriptions") == 3975
        assert "before discounts" not in await sales_text(bot)
        reads = [r.path for r in fake.requests]
        assert reads.count(f"/v1/subscriptions/{SUB}") == 1
        assert sorted(p for p in reads if p.startswith("/v1/coupons/")) == (
            ["/v1/coupons/Five", "/v1/coupons/Pct25"] if version == "clover" else [])
        renewed = with_discounts(story(version, "2_renewed", NOW - dt.timedelta(days=1), 3), ["di_1Pct25"],
                                 ["di_1Five"])
        renewed["data"]["object"]["items"] = copy.deepcopy(upgraded["data"]["object"]["items"])
        assert (await bot.stripe(renewed)).status == 200
        assert await DiscountJob(bot.deps).tick() == 1
        assert [r.path for r in fake.requests] == reads  # both Discounts were cached: no request
        assert (await summary(bot)).currencies[0].mrr == 3975


async def test_once_ended_and_foreign_amounts_are_not_taken_off(dsn: str, fake_slack: FakeSlack,
                                                                fake: FakeStripe) -> None:
    """A `once` coupon, a repeating one whose `end` passed before the event, and 3.00 off in EUR on a USD
    subscription leave $19.00; 10 % forever on the item makes it $17.10."""
    at = NOW - dt.timedelta(days=3)
    once = discount("basil", "di_1Once", coupon("Once", amount_off=1000, currency="usd", duration="once"))
    ended = discount("basil", "di_1Ended", coupon("Half", percent_off=50.0, duration="repeating",
                                                  duration_in_months=1),
                     end=int((at - dt.timedelta(days=1)).timestamp()))
    euro = discount("basil", "di_1Euro", coupon("Euro", amount_off=300, currency="eur"))
    tenth = discount("basil", "di_1Tenth", coupon("Tenth", percent_off=10))
    evt = with_discounts(story("basil", "1_created", at, 1), ["di_1Once", "di_1Ended", "di_1Euro"], ["di_1Tenth"])
    serve(fake, evt, {d["id"]: d for d in (once, ended, euro, tenth)})
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STRIPE_API_KEY=API_KEY,
                         STRIPE_API_URL=fake.url) as bot:
        assert (await bot.stripe(evt)).status == 200
        assert await DiscountJob(bot.deps).tick() == 1
        assert (await summary(bot)).currencies[0].mrr == 1710
        assert await bot.deps.pool.fetchval("SELECT discounts FROM subscription_events") == "applied"


async def test_without_a_key_nothing_is_read_and_sales_says_so(dsn: str, fake_slack: FakeSlack,
                                                               fake: FakeStripe) -> None:
    """No STRIPE_API_KEY: the job does nothing, no request is made, and /sales says MRR is before discounts (so does
    /api/monitoring/sales)."""
    evt = with_discounts(story("clover", "1_created", NOW - dt.timedelta(days=1), 1), ["di_1Pct25"], [])
    token = "monitor-token-discounts-0123456789"
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STRIPE_API_URL=fake.url, MONITORING_TOKEN=token) as bot:
        assert (await bot.stripe(evt)).status == 200
        assert await DiscountJob(bot.deps).tick() is None
        assert (await summary(bot)).currencies[0].mrr == 1900
        assert "ℹ️ MRR is before discounts for 1 subscription whose discounts Stripe sent as ids only" in \
            await sales_text(bot)
        resp = await bot.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {token}"})
        body = (await resp.json())["subscriptions"]
        assert (body["discounts_unread"], body["discounts_gone"]) == (1, 0), body
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM discount_fetches") == 0
    assert fake.requests == []


async def test_a_discount_gone_before_it_is_read_leaves_mrr_before_it(dsn: str, fake_slack: FakeSlack,
                                                                     fake: FakeStripe) -> None:
    """The Discount was removed before the job read the subscription: the snapshot is marked missing, /sales
    says so, and nothing is asked again."""
    evt = with_discounts(story("basil", "1_created", NOW - dt.timedelta(days=1), 1), ["di_1Gone"], [])
    serve(fake, with_discounts(evt, [], []), {})
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STRIPE_API_KEY=API_KEY,
                         STRIPE_API_URL=fake.url) as bot:
        assert (await bot.stripe(evt)).status == 200
        assert await DiscountJob(bot.deps).tick() == 1
        assert await DiscountJob(bot.deps).tick() == 0
        got = await summary(bot)
        assert (got.currencies[0].mrr, got.discounts_unread, got.discounts_gone) == (1900, 0, 1)
        assert "1 more had a discount removed before it could be read" in await sales_text(bot)
    assert [r.path for r in fake.requests] == [f"/v1/subscriptions/{SUB}"]


async def test_rate_limits_and_errors_are_retried_later(dsn: str, fake_slack: FakeSlack, fake: FakeStripe) -> None:
    """A 500 backs the subscription off with an attempt counted; a 429 puts it back without one; then it is read."""
    pct, _, _ = terms("basil")
    evt = with_discounts(story("basil", "1_created", NOW - dt.timedelta(days=1), 1), ["di_1Pct25"], [])
    serve(fake, evt, {"p": pct})
    clock = FakeClock(NOW)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        assert (await bot.stripe(evt)).status == 200
        job = DiscountJob(bot.deps, sleep=sleep)
        fake.fail_next(1, status=500)
        assert await job.tick() == 0
        row = await bot.deps.pool.fetchrow("SELECT attempts, due_at, last_error FROM discount_fetches")
        assert row["attempts"] == 1 and "500" in row["last_error"] and row["due_at"] > clock.now
        assert await job.tick() == 0  # not due yet: no request
        clock.advance(minutes=2)
        fake.fail_next(4, status=429, retry_after="1")
        assert await job.tick() == 0
        row = await bot.deps.pool.fetchrow("SELECT attempts, last_error FROM discount_fetches")
        assert row["attempts"] == 1 and "429" in row["last_error"] and waits == [1.0, 1.0, 1.0]
        clock.advance(minutes=2)
        assert await job.tick() == 1
        assert (await mrr.summary(bot.deps.pool, now=clock.now, since=NOW - dt.timedelta(days=30))
                ).currencies[0].mrr == 1425
    assert [r.answered for r in fake.requests] == [500, 429, 429, 429, 429, 200]


async def test_a_deleted_coupon_leaves_its_discount_unknown(dsn: str, fake_slack: FakeSlack,
                                                            fake: FakeStripe) -> None:
    """Clover names the coupon by id; GET /v1/coupons answers 404 (deleted): that discount stays unknown, the other
    one is applied ($19.00 less 25 % = $14.25) and the snapshot is marked missing."""
    pct, _, coupons = terms("clover")
    deleted = discount("clover", "di_1Deleted", coupon("Deleted", percent_off=50.0))
    evt = with_discounts(story("clover", "1_created", NOW - dt.timedelta(days=1), 1), ["di_1Pct25", "di_1Deleted"],
                         [])
    serve(fake, evt, {"p": pct, "d": deleted})
    fake.coupons["Pct25"] = coupons["Pct25"]
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STRIPE_API_KEY=API_KEY,
                         STRIPE_API_URL=fake.url) as bot:
        assert (await bot.stripe(evt)).status == 200
        assert await DiscountJob(bot.deps).tick() == 1
        got = await summary(bot)
        assert (got.currencies[0].mrr, got.discounts_gone) == (1425, 1)
    assert [r.answered for r in fake.requests if r.path.startswith("/v1/coupons/")] == [200, 404]
