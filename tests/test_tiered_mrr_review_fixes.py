"""Tiered prices and what is known of STRIPE_API_KEY (review r2 of 884aefd and 88b3645). Webhooks carry no tiers:
only the discounts job, which runs with a key, reads them. Without a key a tiered ping says its MRR is not known
(never "being computed", a promise no job keeps); /sales counts every paying subscription whose tiers are unread,
whatever the job's queue holds, and says why from what is known: no key, a key Stripe refuses, or being read; and a
tiered subscription whose only event is its deletion counts (and pings) what its churn lost once its tiers are read.
Stripe is the fake on 127.0.0.1, Slack the fake Web API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.blocks.mrr import TIERS_WHY
from bot.stripe.discount_job import DiscountJob
from queries.mrr import TiersUnread
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.test_mrr_display_fixes import ROWS, just_now, summary_now
from tests.test_subscriptions import post
from tests.test_tiered_churn import deleted, seats
from tests.test_tiered_prices_mrr import seats_event, tiered_price

NOT_KNOWN = "MRR not known: tiered price (set STRIPE_API_KEY to read it)"
TOKEN = "monitor-token-tiered-prices-0123456789"


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API."""
    stripe = await FakeStripe().start()
    yield stripe
    await stripe.stop()


async def sales_note(bot: Bot) -> str:
    """What /sales shows, as text."""
    return json.dumps(await bot.command("/sales"), ensure_ascii=False)


# 1. Without a key nothing will read the tiers: the ping says so, and is never edited.

async def test_without_a_key_a_tiered_new_subscriber_is_pinged_mrr_not_known(dsn: str, fake_slack: FakeSlack,
                                                                             fake: FakeStripe) -> None:
    price = tiered_price("price_nokey_new", "volume", ROWS)
    async with start_bot(dsn, fake_slack, STRIPE_API_URL=fake.url) as bot:
        texts = await post(bot, seats_event("created", "sub_1NKNEW", price, 10, at=just_now(), n=1))
        assert texts == [f"🎉 New subscriber: Seats × 10 — {NOT_KNOWN}"]
        assert await DiscountJob(bot.deps).tick() is None
        await bot.drain(ignore_pace=True)
        assert bot.slack_api.posted("chat.update") == []
        marked = await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE payload ? 'mrr_computing'")
        assert marked == 0  # nothing waits to be told


async def test_without_a_key_a_tiered_plan_change_is_pinged_mrr_not_known(dsn: str, fake_slack: FakeSlack,
                                                                          fake: FakeStripe) -> None:
    price = tiered_price("price_nokey_more", "volume", ROWS)
    async with start_bot(dsn, fake_slack, STRIPE_API_URL=fake.url) as bot:
        start = just_now() - 30
        await post(bot, seats_event("created", "sub_1NKMORE", price, 10, at=start, n=1))
        texts = await post(bot, seats_event("updated", "sub_1NKMORE", price, 12, at=start + 20, n=2, was=10))
        assert len(texts) == 1 and texts[0].endswith(NOT_KNOWN), texts
        assert "being computed" not in texts[0]


# 2. /sales says why tiered subscriptions are out of MRR, from what is known of the key.

async def test_with_a_key_before_the_job_runs_sales_says_the_tiers_are_being_read(
        dsn: str, fake_slack: FakeSlack, fake: FakeStripe) -> None:
    """The up-to-10 s between intake and the job's tick (or start-up): never "no STRIPE_API_KEY is set"."""
    price = seats(fake, "price_key_unread")
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        assert (await bot.stripe(seats_event("created", "sub_1KUNREAD", price, 10, at=just_now(), n=1))).status == 200
        text = await sales_note(bot)
        assert "1 subscription on tiered prices is not counted in MRR yet: their tiers are being read from Stripe" \
            in text, text
        assert "STRIPE_API_KEY" not in text
        assert await DiscountJob(bot.deps).tick() == 1
        text = await sales_note(bot)
        assert "tiered" not in text and "$80.00" in text, text


async def test_a_refused_key_is_said_in_sales_while_mrr_leaves_the_subscription_out(
        dsn: str, fake_slack: FakeSlack, fake: FakeStripe) -> None:
    """401: the job queued the subscription and cannot read its tiers for an hour at least; MRR shows $0.00, and
    /sales says why (the note once counted only what the job had not queued: none)."""
    price = seats(fake, "price_key_refused")
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        assert (await bot.stripe(seats_event("created", "sub_1KREFUSED", price, 10, at=just_now(), n=1))).status == 200
        fake.fail_next(5, status=401)
        assert await DiscountJob(bot.deps).tick() == 0
        assert (await summary_now(bot)).currencies[0].mrr == 0
        text = await sales_note(bot)
        assert "1 subscription on tiered prices is not counted in MRR: Stripe refuses the key (see /health)" \
            in text, text


async def test_a_key_removed_after_the_job_queued_the_subscription_is_said(dsn: str, fake_slack: FakeSlack,
                                                                          fake: FakeStripe) -> None:
    """Queued with a key (Stripe answered 500), then STRIPE_API_KEY removed and the bot restarted: nothing will
    read the tiers, the queue row lingers; /sales and /api/monitoring/sales still count the subscription."""
    price = seats(fake, "price_key_gone")
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        assert (await bot.stripe(seats_event("created", "sub_1KGONE", price, 10, at=just_now(), n=1))).status == 200
        fake.fail_next(1, status=500)
        assert await DiscountJob(bot.deps).tick() == 0
    async with start_bot(dsn, fake_slack, STRIPE_API_URL=fake.url, MONITORING_TOKEN=TOKEN) as bot:
        assert await DiscountJob(bot.deps).tick() is None
        text = await sales_note(bot)
        assert "1 subscription on tiered prices is not counted in MRR: set STRIPE_API_KEY to read their tiers" \
            in text, text
        resp = await bot.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
        body = (await resp.json())["subscriptions"]
    assert (body["tiers_unread"], body["tiers_unread_reason"]) == (1, "no_key"), body


async def test_the_sales_api_counts_tiered_subscriptions_queued_with_a_key(dsn: str, fake_slack: FakeSlack,
                                                                          fake: FakeStripe) -> None:
    """/api/monitoring/sales counts as /sales does: the job's queue does not hide a subscription."""
    price = seats(fake, "price_key_json")
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url,
                         MONITORING_TOKEN=TOKEN) as bot:
        assert (await bot.stripe(seats_event("created", "sub_1KJSON", price, 10, at=just_now(), n=1))).status == 200
        fake.fail_next(1, status=500)
        assert await DiscountJob(bot.deps).tick() == 0
        resp = await bot.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
        body = (await resp.json())["subscriptions"]
    assert (body["tiers_unread"], body["tiers_unread_reason"]) == (1, "reading"), body


# 3. A deletion alone (salespulse installed after the subscription started) counts and pings its churn.

async def test_a_tiered_subscription_known_only_by_its_deletion_counts_its_churn(dsn: str, fake_slack: FakeSlack,
                                                                                fake: FakeStripe) -> None:
    price = seats(fake, "price_only_deleted")
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        texts = await post(bot, deleted(price, "sub_1ONLYDEL", at=just_now()))
        assert texts == ["👋 Subscriber churned: Seats × 10 — MRR being computed (tiered price)"]
        assert await DiscountJob(bot.deps).tick() == 1
        figures = (await summary_now(bot)).currencies[0]
        assert (figures.churned, figures.churned_count, figures.mrr) == (8000, 1, 0)
        await bot.drain(ignore_pace=True)
        edits = bot.slack_api.posted("chat.update")
        assert [e["text"] for e in edits] == ["👋 Subscriber churned: Seats × 10 — MRR −$80.00"]
        assert_valid_message(edits[0])


def test_every_reason_has_its_wording() -> None:
    """bot/blocks/ imports no enum from queries/: its wording is keyed by each TiersUnread's value."""
    assert set(TIERS_WHY) == {*TiersUnread, None}
