"""Subscriptions through the signed Stripe route: the story's messages and MRR at each step, any arrival order."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.intake.batch import Submission, ingest_batch
from bot.stripe.parse import parse_event
from bot.subscriptions.renewals import Renewals
from queries import mrr
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack

STRIPE = Path(__file__).parent / "fixtures" / "stripe"
STORY = ("1_created", "2_renewed", "3_upgraded", "4_cancel_scheduled", "5_churned")
FAR = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# version → the day the cancellation takes effect (the second period's end) as the ping writes it
CANCELS_ON = {"basil": "11 Jul 2025", "clover": "01 Jan 2026"}
RESET = """TRUNCATE subscriptions, subscription_events, renewal_invoices, webhook_logs, outbox, orders, payment_refs,
         delivery_attempts, order_rollups, channel_pace CASCADE"""


def story_event(version: str, name: str) -> dict[str, Any]:
    """One event of the subscription story (tests/fixtures/stripe/subscriptions/derive_story.py)."""
    folder, _, file = name.rpartition("/")
    path = STRIPE / "versions" / version / folder if folder else STRIPE / "subscriptions" / version
    raw = json.loads((path / f"{file}.json").read_text("utf-8"))
    assert isinstance(raw, dict)
    return raw


async def post(bot: Bot, evt: dict[str, Any]) -> list[str]:
    """Post one event signed, deliver what is due; the texts of the messages Slack got."""
    before = len(bot.slack_api.posted())
    resp = await bot.stripe(evt)
    assert resp.status == 200, await resp.text()
    await bot.drain(until_idle=False, ignore_pace=True)
    posts = bot.slack_api.posted()[before:]
    for p in posts:
        assert_valid_message(p)
    return [p["text"] for p in posts]


async def figures(bot: Bot) -> mrr.MrrFigures | None:
    """The store's USD MRR figures over all time, None when it has none."""
    got = await mrr.summary(bot.deps.pool, now=FAR, since=EPOCH)
    return got.currencies[0] if got.currencies else None


def expected_story(version: str) -> list[tuple[str, str | None, int, int]]:
    """(event, the message it must post or None for none, MRR after it in cents, active subscribers)."""
    return [
        ("1_created", "🎉 New subscriber: Pro monthly — MRR +$19.00", 1900, 1),
        ("subscription_first/invoice.paid", "💰 New Sale: $19.00 — Pro plan", 1900, 1),
        ("subscription_renewal/invoice.paid", None, 1900, 1),  # a renewal: held for the hour's summary
        ("2_renewed", None, 1900, 1),
        ("3_upgraded", "⬆️ Plan change: Pro monthly → Team monthly × 2 — MRR +$39.00", 5800, 1),
        ("4_cancel_scheduled",
         f"⏳ Cancellation scheduled: Team monthly × 2 cancels at period end on {CANCELS_ON[version]}", 5800, 1),
        ("5_churned", "👋 Subscriber churned: Team monthly × 2 — MRR −$58.00", 0, 0),
    ]


@pytest.fixture
async def shop(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with renewals as they are by default in production (coalesced into the hour's summary)."""
    async with start_bot(dsn, fake_slack, SUBSCRIPTION_RENEWALS="coalesce") as running_bot:
        yield running_bot


def test_renewals_are_coalesced_by_default() -> None:
    """SUBSCRIPTION_RENEWALS defaults to coalesce (the tests' make_settings sets ping, as it zeroes settling)."""
    assert Settings.model_fields["subscription_renewals"].default is Renewals.COALESCE


@pytest.mark.parametrize("version", ["basil", "clover"])
async def test_the_story_posts_each_change_and_moves_mrr(shop: Bot, version: str) -> None:
    """Create → renew → upgrade → cancel at period end → churn: one message each (renewal quiet), MRR each step."""
    for name, message, expected_mrr, active in expected_story(version):
        texts = await post(shop, story_event(version, name))
        assert texts == ([message] if message else []), name
        got = await figures(shop)
        assert got is not None and (got.mrr, got.active) == (expected_mrr, active), name
    got = await figures(shop)
    assert got is not None and (got.new, got.expansion, got.churned, got.churned_count) == (1900, 3900, 5800, 1)
    row = await shop.deps.pool.fetchrow("SELECT status, mrr_units, cancel_at_period_end FROM subscriptions")
    assert tuple(row) == ("canceled", 0, True)


async def test_a_renewal_is_held_for_the_hour_then_sent(shop: Bot) -> None:
    """SUBSCRIPTION_RENEWALS=coalesce (the default): the renewal's sale ping waits for the end of the hour."""
    await post(shop, story_event("basil", "subscription_first/invoice.paid"))
    assert await post(shop, story_event("basil", "subscription_renewal/invoice.paid")) == []
    held = await shop.deps.pool.fetchval("SELECT available_at FROM outbox WHERE status = 'pending' AND kind = 'sale'")
    assert held is not None and held.minute == 0 and held > dt.datetime.now(dt.UTC)
    await shop.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    await shop.drain(ignore_pace=True)
    assert [p["text"] for p in shop.slack_api.posted()][-1].startswith("🔄 Renewal: $19.00")


@pytest.mark.parametrize("version", ["basil", "clover"])
async def test_any_arrival_order_ends_in_the_same_state_and_messages(bot: Bot, version: str) -> None:
    """Shuffled story events (and each sent twice): the same final state, ledger figures and messages."""
    events = [story_event(version, n) for n in STORY]
    orders = [list(range(5)), list(reversed(range(5)))]
    rng = random.Random(15)
    orders += [rng.sample(range(5), 5) for _ in range(4)]
    outcomes = set()
    for order in orders:
        await bot.deps.pool.execute(RESET)
        texts: list[str] = []
        for i in order:
            texts += await post(bot, events[i])
            texts += await post(bot, events[i])  # redelivered: a duplicate changes nothing
        got = await figures(bot)
        row = await bot.deps.pool.fetchrow("SELECT status, mrr_units, plan, last_event_id FROM subscriptions")
        outcomes.add((tuple(sorted(texts)), got, tuple(row)))
    assert len(outcomes) == 1, outcomes
    texts, got, row = outcomes.pop()
    assert len(texts) == 4 and row[:3] == ("canceled", 0, "Team monthly × 2") and row[3] == events[4]["id"]
    assert got is not None and (got.mrr, got.new, got.expansion, got.churned) == (0, 1900, 3900, 5800)


@pytest.mark.parametrize("version", ["basil", "clover", "dahlia", "endive"])
async def test_a_held_renewal_stays_held_whatever_order_its_payments_events_come_in(
        dsn: str, fake_slack: FakeSlack, version: str) -> None:
    """Coalesce: each permutation of a renewal's events posts nothing before the hour's end, then one sale ping
    (an invoice_payment.paid after the invoice re-renders the ping and must not release it early)."""
    types = ("invoice.paid", "invoice_payment.paid", "payment_intent.succeeded", "charge.succeeded")
    events = [story_event(version, f"subscription_renewal/{t}") for t in types]
    async with start_bot(dsn, fake_slack, SUBSCRIPTION_RENEWALS="coalesce", SALE_SETTLE_SECONDS="600") as shop:
        for order in itertools.permutations(range(len(events))):
            await shop.deps.pool.execute(RESET)
            shop.slack_api.calls.clear()
            for i in order:
                assert await post(shop, events[i]) == [], order
            await shop.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
            await shop.drain(ignore_pace=True)
            assert [p["text"] for p in shop.slack_api.posted()] == [
                "🔄 Renewal: $19.00 — Pro plan"], order


@pytest.mark.parametrize(("mode", "pinged"), [("ping", True), ("report", False)])
async def test_renewals_can_ping_or_only_count(dsn: str, fake_slack: FakeSlack, mode: str, pinged: bool) -> None:
    """SUBSCRIPTION_RENEWALS=ping: the renewal pings at once; =report: no ping, but the order counts."""
    async with start_bot(dsn, fake_slack, SUBSCRIPTION_RENEWALS=mode) as shop:
        renewal = await post(shop, story_event("clover", "subscription_renewal/invoice.paid"))
        assert renewal == (["💰 New Sale: $19.00 — Pro plan"] if pinged else [])
        assert await shop.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0
        assert await shop.deps.pool.fetchval("SELECT sum(amount_total) FROM orders") == 1900


async def test_backfilled_subscription_events_are_stored_without_pings(bot: Bot) -> None:
    """notify=False (backfill, Events API history): snapshots and states stored, no message queued."""
    evt = story_event("basil", "1_created")
    sub = Submission(source="stripe", event_id=evt["id"], event_type=evt["type"], body=json.dumps(evt),
                     event=parse_event(evt), via="backfill")
    async with bot.deps.pool.acquire() as conn:
        await ingest_batch(conn, [sub], tz=bot.deps.settings.tz, now=dt.datetime.now(dt.UTC), notify=False)
    assert await bot.deps.pool.fetchval("SELECT mrr_minor(mrr_units) FROM subscriptions") == 1900
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_duplicate_event_is_stored_once(bot: Bot) -> None:
    """The same customer.subscription.created twice: one snapshot, one message, the second answered duplicate."""
    evt = story_event("basil", "1_created")
    assert len(await post(bot, evt)) == 1
    resp = await bot.stripe(evt)
    assert (await resp.json())["outcome"] == "duplicate"
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM subscription_events") == 1


@pytest.mark.parametrize("version", ["basil", "clover"])
async def test_a_subscription_older_than_the_bot_is_not_new_mrr(bot: Bot, version: str) -> None:
    """First seen at a renewal (no created event): no new MRR; its upgrade and churn still move MRR."""
    await post(bot, story_event(version, "2_renewed"))
    got = await figures(bot)
    assert got is not None and (got.mrr, got.new, got.active) == (1900, 0, 1)
    await post(bot, story_event(version, "3_upgraded"))
    await post(bot, story_event(version, "5_churned"))
    got = await figures(bot)
    assert got is not None and (got.mrr, got.new, got.expansion, got.churned) == (0, 0, 3900, 5800)


async def test_a_trial_counts_no_mrr_until_it_converts(bot: Bot) -> None:
    """A trialing subscription posts nothing and adds no MRR; its conversion is the new subscriber."""
    evt = story_event("basil", "1_created")
    obj = evt["data"]["object"]
    obj["status"], obj["trial_end"] = "trialing", obj["created"] + 14 * 86_400
    assert await post(bot, evt) == []
    got = await figures(bot)
    assert got is not None and (got.mrr, got.active) == (0, 0)
    converted = json.loads(json.dumps(evt))
    converted.update(id="evt_trial_converted", type="customer.subscription.updated",
                     created=obj["trial_end"] + 1)
    converted["data"]["object"]["status"] = "active"
    converted["data"]["previous_attributes"] = {"status": "trialing"}
    assert await post(bot, converted) == ["🎉 New subscriber: Pro monthly — MRR +$19.00"]
    got = await figures(bot)
    assert got is not None and (got.mrr, got.active, got.new) == (1900, 1, 1900)
