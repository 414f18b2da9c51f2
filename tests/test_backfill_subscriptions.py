"""`salespulse backfill` lists the store's subscriptions (GET /v1/subscriptions), so a yearly or quarterly subscriber
whose last event is older than the Events API's 30 days is in MRR from day one — as MRR it already had, not new MRR —
while one an event told keeps its ledger as the events wrote it."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.cli.main import main
from queries import mrr
from tests.fake_stripe import API_KEY, FakeStripe
from tests.test_discounts import coupon, discount
from tests.test_subscriptions import story_event

NOW = dt.datetime.now(dt.UTC)
DAY = 86_400
STRIPE = Path(__file__).parent / "fixtures" / "stripe" / "versions"


def ago(days: float) -> int:
    """Unix seconds `days` before the test started."""
    return int((NOW - dt.timedelta(days=days)).timestamp())


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty working directory (no .env) and no Slack settings from the machine."""
    monkeypatch.chdir(tmp_path)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


def subscriber(version: str, n: int, *, amount: int, interval: str = "month", count: int = 1, since: float = 200,
               status: str = "active") -> dict[str, Any]:
    """The n-th subscriber as GET /v1/subscriptions lists it: the version's own Subscription object (acacia keeps its
    period on the subscription, basil on on each item), its own ids, `amount` every `count` `interval`s since
    `since` days ago (its current period started then), no event of it in the last 30 days."""
    evt = json.loads((STRIPE / version / "subscription_first" / "customer.subscription.created.json").read_text())
    obj: dict[str, Any] = copy.deepcopy(evt["data"]["object"])
    sub_id = f"sub_1Listed{n:04d}"
    obj.update(id=sub_id, customer=f"cus_1Listed{n:04d}", created=ago(since), start_date=ago(since), status=status,
               pause_collection=None)  # Stripe's example objects of basil on show a paused collection
    item = obj["items"]["data"][0]
    item.update(id=f"si_1Listed{n:04d}", subscription=sub_id)
    period = {"current_period_start": ago(since), "current_period_end": ago(since) + 400 * DAY}
    (obj if "current_period_end" in obj else item).update(period)
    price_id = f"price_1{interval}{count}x{amount}"
    item["price"].update(id=price_id, unit_amount=amount, unit_amount_decimal=str(amount),
                         nickname=f"Pro every {count} {interval}")
    item["price"]["recurring"].update(interval=interval, interval_count=count)
    item["plan"].update(id=price_id, amount=amount, amount_decimal=str(amount), interval=interval,
                        interval_count=count)
    return obj


async def backfill(monkeypatch: pytest.MonkeyPatch, dsn: str, fake: FakeStripe) -> int:
    """`salespulse backfill --days 90` against the fake; its exit status."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_API_URL", fake.url)
    return await asyncio.to_thread(main, ["backfill", "--days", "90"])


async def usd(dsn: str, *, now: dt.datetime = NOW) -> mrr.MrrFigures:
    """The USD MRR figures at `now`, movements over the 30 days before it."""
    conn = await asyncpg.connect(dsn)
    try:
        got = await mrr.summary(conn, now=now, since=now - dt.timedelta(days=30))
    finally:
        await conn.close()
    return {c.currency: c for c in got.currencies}["USD"]


async def rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)  # type: ignore[no-any-return]  # asyncpg's fetch is untyped
    finally:
        await conn.close()


@pytest.mark.parametrize("version", ["acacia", "basil", "clover"])
async def test_yearly_and_quarterly_subscribers_no_event_told_are_in_mrr_not_as_new(
        dsn: str, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """A monthly subscriber renewed 5 days ago ($19.00, from its event), a yearly one ($190.00: $15.83 a month) and a
    quarterly one ($45.00: $15.00 a month) whose last events are older than 30 days: MRR $49.83 from 3 subscribers,
    the same a week ago (they were paying then), and no new MRR booked for the listed two (review: $19.00, 1)."""
    async with FakeStripe() as fake:
        renewed = story_event("basil", "2_renewed")
        renewed["created"] = ago(5)
        fake.add_event(renewed)
        for sub in (subscriber(version, 1, amount=19000, interval="year"),
                    subscriber(version, 2, amount=4500, count=3, since=50)):
            fake.subscriptions[sub["id"]] = sub
        assert await backfill(monkeypatch, dsn, fake) == 0
        listings = fake.served("/v1/subscriptions")
    got = await usd(dsn)
    assert (got.mrr, got.active, got.mrr_week_ago) == (1900 + 1583 + 1500, 3, 1900 + 1583 + 1500)
    assert (got.new, got.reactivation, got.expansion) == (0, 0, 0)
    [listing] = listings
    assert sorted(v for k, v in listing.params if k == "expand[]") == ["data.discounts", "data.items.data.discounts"]
    assert listing.param("status") is None  # all but the canceled ones, which count no MRR


async def test_a_subscription_an_event_told_is_neither_duplicated_nor_moved(
        dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The story's subscription, known from its renewal event 5 days ago ($19.00), is listed upgraded to $58.00 (an
    upgrade whose event the backfill has not read): its one snapshot and state stay the event's."""
    async with FakeStripe() as fake:
        renewed = story_event("basil", "2_renewed")
        renewed["created"] = ago(5)
        fake.add_event(renewed)
        listed = copy.deepcopy(renewed["data"]["object"])
        listed["items"]["data"][0]["quantity"] = 2
        listed["items"]["data"][0]["price"]["unit_amount"] = 2900
        fake.subscriptions[listed["id"]] = listed
        assert await backfill(monkeypatch, dsn, fake) == 0
    snapshots = await rows(dsn, "SELECT event_id, mrr_minor(mrr_units) FROM subscription_events")
    assert [tuple(r) for r in snapshots] == [(renewed["id"], 1900)]
    state = await rows(dsn, "SELECT last_event_id, mrr_minor(mrr_units) FROM subscriptions")
    assert [tuple(r) for r in state] == [(renewed["id"], 1900)]


async def test_ended_subscriptions_are_not_stored_and_a_trial_counts_no_mrr(
        dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Canceled ones are not listed (Stripe's default); one whose first payment expired unpaid is, and is not stored
    (no MRR, not running); a trial is stored counting nothing until it pays; one past due counts."""
    async with FakeStripe() as fake:
        subs = [subscriber("basil", 1, amount=1900, status="canceled"),
                subscriber("basil", 2, amount=1900, status="incomplete_expired"),
                subscriber("basil", 3, amount=1900, status="trialing"),
                subscriber("basil", 4, amount=1900, status="past_due")]
        fake.subscriptions.update({s["id"]: s for s in subs})
        assert await backfill(monkeypatch, dsn, fake) == 0
    state = await rows(dsn, "SELECT id, status, mrr_minor(mrr_units) FROM subscriptions ORDER BY id")
    assert [tuple(r) for r in state] == [("sub_1Listed0003", "trialing", 0), ("sub_1Listed0004", "past_due", 1900)]
    got = await usd(dsn)
    assert (got.mrr, got.active, got.new) == (1900, 1, 0)


async def test_discounts_come_expanded_and_count_at_once(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A basil subscription lists its Discounts as ids: expanded, its 25 % off counts now ($14.25), not pending for
    the discounts job."""
    async with FakeStripe() as fake:
        sub = subscriber("basil", 1, amount=1900)
        sub["discounts"] = ["di_1Pct25"]
        fake.subscriptions[sub["id"]] = sub
        fake.discounts["di_1Pct25"] = discount("basil", "di_1Pct25", coupon("Pct25", percent_off=25.0))
        assert await backfill(monkeypatch, dsn, fake) == 0
    state = await rows(dsn, "SELECT mrr_minor(mrr_units), mrr_minor(before_mrr_units), discounts"
                            " FROM subscription_events")
    assert [tuple(r) for r in state] == [(1425, 1425, None)]


async def test_every_page_is_read_and_a_second_run_adds_nothing(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """150 subscribers, all created in the same second: two pages of 100, each stored once; run again, nothing new."""
    async with FakeStripe() as fake:
        for n in range(150):
            sub = subscriber("clover", n, amount=1000)
            fake.subscriptions[sub["id"]] = sub
        assert await backfill(monkeypatch, dsn, fake) == 0
        assert len(fake.served("/v1/subscriptions")) == 2
        assert "150 imported" in capsys.readouterr().out
        assert await backfill(monkeypatch, dsn, fake) == 0
        assert "0 imported" in capsys.readouterr().out
    got = await usd(dsn)
    assert (got.mrr, got.active, got.new) == (150_000, 150, 0)
    assert (await rows(dsn, "SELECT count(*) FROM subscription_events"))[0][0] == 150

