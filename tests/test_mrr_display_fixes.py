"""MRR as the owner reads it: its change written as every other change ("▲ 4%", never "▲ 4.2 %"); a new subscriber
on a tiered price never pinged as "MRR +$0.00" (its tiers are read after intake: the ping says the MRR is being
computed and is edited, or rewritten while still waiting, once they are); and, without STRIPE_API_KEY, /sales saying
how many tiered subscriptions MRR leaves out. Stripe is the fake on 127.0.0.1, Slack the fake Web API."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator

import pytest

from bot.blocks.common import change
from bot.blocks.mrr import mrr_blocks, mrr_change, mrr_report_line
from bot.stripe.discount_job import DiscountJob, tiers_unread
from queries import mrr
from queries.mrr import MrrFigures, MrrSummary
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.test_subscriptions import post
from tests.test_tiered_prices_mrr import NOW, seats_event, tiered_price

# 10 seats at $8.00 (volume, from 6 seats): $80.00 a month.
ROWS = [{"up_to": 5, "unit_amount": 1000}, {"up_to": None, "unit_amount": 800}]


def just_now() -> int:
    """An event time a minute ago: the pings' tests run on the real clock, which the delivery worker paces by."""
    return int(time.time()) - 60


async def summary_now(bot: Bot) -> MrrSummary:
    """The MRR figures now, over the last 30 days, told what the bot knows of its key (as /sales is)."""
    now = dt.datetime.now(dt.UTC)
    return await mrr.summary(bot.deps.pool, now=now, since=now - dt.timedelta(days=30), tiers=tiers_unread(bot.deps))


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API."""
    stripe = await FakeStripe().start()
    yield stripe
    await stripe.stop()


def usd(now: int, before: int) -> MrrSummary:
    figures = MrrFigures(currency="USD", mrr=now, mrr_week_ago=before, new=now, reactivation=0, expansion=0,
                         contraction=0, churned=0, churned_count=0, active=1)
    return MrrSummary(since=NOW - dt.timedelta(days=30), now=NOW, currencies=(figures,))


@pytest.mark.parametrize(("now", "before"), [(10420, 10000), (9960, 10000), (10000, 10000), (10030, 10000),
                                             (30550, 10000)])
def test_an_mrr_change_reads_as_every_other_change(now: int, before: int) -> None:
    """MRR up 4.2% reads "▲ 4%" as the orders' "▲ 52%" beside it: one rule (whole percents, no space before "%",
    "<1%" under half a percent) on /sales, the App Home, the dashboard and the report."""
    assert mrr_change(now, before) == change(now, before)


def test_the_mrr_line_has_no_space_before_its_percent_sign() -> None:
    """/sales (and the App Home) and the morning report: "▲ 4%", escaped where it reads "<1%"."""
    text = json.dumps(mrr_blocks(usd(10420, 10000)), ensure_ascii=False)
    assert "▲ 4% vs 7 days ago" in text and " %" not in text
    assert mrr_report_line(usd(10030, 10000)) == "MRR $100.30 ▲ &lt;1% this week"


async def test_a_tiered_new_subscriber_ping_is_edited_once_its_tiers_are_read(dsn: str, fake_slack: FakeSlack,
                                                                              fake: FakeStripe) -> None:
    """Posted before the tiers are read, the ping says the MRR is being computed (never "+$0.00"); the discounts
    job reads the tiers and the posted ping is edited in place to "+$80.00", once."""
    price = tiered_price("price_seats_ping", "volume", ROWS)
    fake.prices[price["id"]] = price
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        texts = await post(bot, seats_event("created", "sub_1PING", price, 10, at=just_now(), n=1))
        assert texts == ["🎉 New subscriber: Seats × 10 — MRR being computed (tiered price)"]
        assert await DiscountJob(bot.deps).tick() == 1
        await bot.drain(until_idle=False, ignore_pace=True)
        edits = bot.slack_api.posted("chat.update")
        assert [e["text"] for e in edits] == ["🎉 New subscriber: Seats × 10 — MRR +$80.00"]
        assert_valid_message(edits[0])
        assert "+$80.00" in json.dumps(edits[0]["blocks"], ensure_ascii=False)
        assert await DiscountJob(bot.deps).tick() == 0  # nothing left to read: no second edit
        await bot.drain(until_idle=False, ignore_pace=True)
        assert len(bot.slack_api.posted("chat.update")) == 1


async def test_a_tiered_ping_not_sent_yet_goes_with_its_mrr(dsn: str, fake_slack: FakeSlack,
                                                             fake: FakeStripe) -> None:
    """Tiers read before the ping went out: it is rewritten, so it goes with its MRR. A worker may have read it
    already (none locks a row it sends), so it is edited too — with the same text, never back to "computing"."""
    price = tiered_price("price_seats_wait", "volume", ROWS)
    fake.prices[price["id"]] = price
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        resp = await bot.stripe(seats_event("created", "sub_1WAIT", price, 10, at=just_now(), n=1))
        assert resp.status == 200
        assert await DiscountJob(bot.deps).tick() == 1
        await bot.drain(ignore_pace=True)
        sent = bot.slack_api.posted() + bot.slack_api.posted("chat.update")
        assert [p["text"] for p in bot.slack_api.posted()] == ["🎉 New subscriber: Seats × 10 — MRR +$80.00"]
        assert {p["text"] for p in sent} == {"🎉 New subscriber: Seats × 10 — MRR +$80.00"}


async def test_without_a_key_sales_says_how_many_tiered_subscriptions_are_not_counted(
        dsn: str, fake_slack: FakeSlack, fake: FakeStripe) -> None:
    """No STRIPE_API_KEY: the tiers are never read, the subscriptions stay out of MRR, and /sales says so."""
    price = tiered_price("price_seats_nokey", "volume", ROWS)
    async with start_bot(dsn, fake_slack, STRIPE_API_URL=fake.url) as bot:
        for n, sub in enumerate(("sub_1NOKEYA", "sub_1NOKEYB")):
            await post(bot, seats_event("created", sub, price, 10, at=just_now() + n, n=n))
        assert await DiscountJob(bot.deps).tick() is None
        summary = await summary_now(bot)
        text = json.dumps(mrr_blocks(summary), ensure_ascii=False)
        assert "2 subscriptions on tiered prices are not counted in MRR: set STRIPE_API_KEY to read their tiers" in text


async def test_with_a_key_no_note_says_none_is_set(dsn: str, fake_slack: FakeSlack, fake: FakeStripe) -> None:
    """With a key, a tiered subscription the job has queued but not read yet (Stripe answered 500) is not said to
    lack a key; once read it counts ($80.00) and no note is left."""
    price = tiered_price("price_seats_read", "volume", ROWS)
    fake.prices[price["id"]] = price
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        resp = await bot.stripe(seats_event("created", "sub_1READ", price, 10, at=just_now(), n=1))
        assert resp.status == 200
        fake.fail_next(1, status=500)
        assert await DiscountJob(bot.deps).tick() == 0
        assert "STRIPE_API_KEY" not in json.dumps(mrr_blocks(await summary_now(bot)), ensure_ascii=False)
        clock.advance(minutes=5)
        assert await DiscountJob(bot.deps).tick() == 1
        summary = await summary_now(bot)
        assert summary.currencies[0].mrr == 8000
        assert "tiered" not in json.dumps(mrr_blocks(summary), ensure_ascii=False)
