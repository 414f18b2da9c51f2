"""A subscription on a tiered price that stops paying is pinged as any churn is. Webhooks carry no tiers, so at intake
its items are worth 0 and the event alone says nothing was lost; the ledger says what was (the snapshot it moves
from): the ping gives the figure when it is known, else says the MRR is being computed and is told it once the
discounts job has read the tiers (edited in place, or rewritten while it waits). Every order of arrival: the deletion
after the job read the tiers, before it, in the same delivery as its creation, before its creation (a deletion
alone is a churn); without STRIPE_API_KEY (its MRR not known); and a customer paying on another subscription (a
subscription ended, not a subscriber churned). Stripe is the fake on 127.0.0.1, Slack the fake Web API."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.stripe.discount_job import DiscountJob
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.test_mrr_display_fixes import ROWS, just_now
from tests.test_subscriptions import post, story_event
from tests.test_tiered_prices_mrr import seats_event, tiered_price

COMPUTING = "👋 Subscriber churned: Seats × 10 — MRR being computed (tiered price)"
LOST = "👋 Subscriber churned: Seats × 10 — MRR −$80.00"


def deleted(price: dict[str, Any], sub_id: str, *, at: int, n: int = 9) -> dict[str, Any]:
    """customer.subscription.deleted of 10 seats of `price`: canceled, ended at `at`."""
    evt = seats_event("deleted", sub_id, price, 10, at=at, n=n)
    evt["data"]["object"].update(status="canceled", canceled_at=at, ended_at=at)
    return evt


@pytest.fixture
async def fake() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API, holding the tiered price."""
    stripe = await FakeStripe().start()
    yield stripe
    await stripe.stop()


def seats(fake: FakeStripe, price_id: str) -> dict[str, Any]:
    """A tiered price of 10 seats at $8.00 ($80.00 a month), which the fake Stripe holds with its tiers."""
    price = tiered_price(price_id, "volume", ROWS)
    fake.prices[price_id] = price
    return price


async def edits(bot: Bot) -> list[str]:
    """Deliver what is due; the texts of the edits Slack got, each a valid message."""
    await bot.drain(ignore_pace=True)
    got = bot.slack_api.posted("chat.update")
    for e in got:
        assert_valid_message(e)
    return [e["text"] for e in got]


async def test_a_churn_after_the_tiers_are_read_is_pinged_with_what_it_lost(dsn: str, fake_slack: FakeSlack,
                                                                           fake: FakeStripe) -> None:
    """The ledger already knows the $80.00 it moves from: the churn ping says it at once, and is never edited."""
    price, at = seats(fake, "price_churn_after"), just_now()
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        await post(bot, seats_event("created", "sub_1CHAFTER", price, 10, at=at - 10, n=1))
        assert await DiscountJob(bot.deps).tick() == 1
        assert await edits(bot) == ["🎉 New subscriber: Seats × 10 — MRR +$80.00"]
        assert await post(bot, deleted(price, "sub_1CHAFTER", at=at)) == [LOST]
        assert await DiscountJob(bot.deps).tick() == 1  # the deletion's own snapshot, read from the cached tiers
        assert [t for t in await edits(bot) if "churned" in t] == []


async def test_a_churn_before_the_tiers_are_read_is_edited_with_what_it_lost(dsn: str, fake_slack: FakeSlack,
                                                                            fake: FakeStripe) -> None:
    """Created and deleted before the job reads the tiers: the churn is pinged at once as being computed (never
    "−$0.00", never nothing), then edited once to "−$80.00" beside the welcome's edit to "+$80.00"."""
    price, at = seats(fake, "price_churn_before"), just_now()
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        await post(bot, seats_event("created", "sub_1CHBEFORE", price, 10, at=at - 10, n=1))
        assert await post(bot, deleted(price, "sub_1CHBEFORE", at=at)) == [COMPUTING]
        assert await DiscountJob(bot.deps).tick() == 1
        assert sorted(await edits(bot)) == sorted([LOST, "🎉 New subscriber: Seats × 10 — MRR +$80.00"])
        assert "−$80.00" in json.dumps(bot.slack_api.posted("chat.update"), ensure_ascii=False)
        assert await DiscountJob(bot.deps).tick() == 0
        assert len(await edits(bot)) == 2


async def test_a_churn_read_before_it_is_sent_goes_with_what_it_lost(dsn: str, fake_slack: FakeSlack,
                                                                    fake: FakeStripe) -> None:
    """Both events in before anything is delivered and the tiers read then: the churn ping is rewritten, so it goes
    with its figure (an edit, if any, says the same)."""
    price, at = seats(fake, "price_churn_wait"), just_now()
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        for evt in (seats_event("created", "sub_1CHWAIT", price, 10, at=at - 10, n=1),
                    deleted(price, "sub_1CHWAIT", at=at)):
            assert (await bot.stripe(evt)).status == 200
        assert await DiscountJob(bot.deps).tick() == 1
        await bot.drain(ignore_pace=True)
        sent = bot.slack_api.posted() + bot.slack_api.posted("chat.update")
        churns = [p["text"] for p in sent if "churn" in p["text"]]
        assert churns and set(churns) == {LOST}


async def test_a_deletion_before_its_creation_is_pinged_once_and_told_what_it_lost(dsn: str, fake_slack: FakeSlack,
                                                                                 fake: FakeStripe) -> None:
    """Out of order: the deletion first is a churn on its own (it did not end in its trial, nor paused: it was
    paying, as for a subscription started before salespulse was installed), pinged as being computed and told the
    $80.00 its items are worth once the tiers are read; its creation, arriving later, is welcomed and told too,
    with no second farewell."""
    price, at = seats(fake, "price_churn_first"), just_now()
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        assert await post(bot, deleted(price, "sub_1CHFIRST", at=at)) == [COMPUTING]
        # The deletion read alone: its loss is what its items are worth, no longer 0 for want of tiers.
        assert await DiscountJob(bot.deps).tick() == 1
        assert await edits(bot) == [LOST]
        assert (await bot.stripe(seats_event("created", "sub_1CHFIRST", price, 10, at=at - 10, n=1))).status == 200
        await bot.drain(ignore_pace=True)
        texts = [p["text"] for p in bot.slack_api.posted()]
        assert sorted(texts) == sorted([COMPUTING, "🎉 New subscriber: Seats × 10 — MRR being computed (tiered price)"])
        assert await DiscountJob(bot.deps).tick() == 1
        assert sorted(await edits(bot)) == sorted([LOST, "🎉 New subscriber: Seats × 10 — MRR +$80.00"])


async def test_without_a_key_a_tiered_churn_says_its_mrr_is_not_known(dsn: str, fake_slack: FakeSlack,
                                                                     fake: FakeStripe) -> None:
    """No STRIPE_API_KEY: the tiers are never read, so the churn is pinged as the new subscriber was: its MRR not
    known (never "being computed": no job would ever tell it)."""
    price, at = tiered_price("price_churn_nokey", "volume", ROWS), just_now()
    async with start_bot(dsn, fake_slack, STRIPE_API_URL=fake.url) as bot:
        await post(bot, seats_event("created", "sub_1CHNOKEY", price, 10, at=at - 10, n=1))
        assert await post(bot, deleted(price, "sub_1CHNOKEY", at=at)) == [
            "👋 Subscriber churned: Seats × 10 — MRR not known: tiered price (set STRIPE_API_KEY to read it)"]


async def test_a_tiered_subscription_ended_beside_another_is_pinged_as_ended(dsn: str, fake_slack: FakeSlack,
                                                                            fake: FakeStripe) -> None:
    """Its customer still pays on another subscription: the MRR contracts by $80.00, no subscriber goes; the ping
    says so, told once the tiers are read. Also a tiered subscription that stops paying (unpaid) rather than
    being deleted."""
    price, at = seats(fake, "price_churn_ended"), just_now()
    other = copy.deepcopy(story_event("basil", "1_created"))
    other["data"]["object"].update(customer="cus_sub_1CHENDED")
    other.update(created=at - 20)
    unpaid = seats_event("updated", "sub_1CHENDED", price, 10, at=at, n=2)
    unpaid["data"]["object"]["status"] = "unpaid"
    unpaid["data"]["previous_attributes"] = {"status": "active"}
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        await post(bot, other)
        await post(bot, seats_event("created", "sub_1CHENDED", price, 10, at=at - 10, n=1))
        assert await post(bot, unpaid) == ["➖ Subscription ended: Seats × 10 — MRR being computed (tiered price)"]
        assert await DiscountJob(bot.deps).tick() == 1
        assert "➖ Subscription ended: Seats × 10 — MRR −$80.00" in await edits(bot)
