"""Paused subscriptions stored by the release before 0042 (found by an upgrade review, migration 0049). That release
did not read `pause_collection`, so it stored a subscription whose collection was paused at its full MRR, and gave
a trial Stripe paused for want of a card, then canceled, a deletion snapshot saying it had been paying. 0043 only
recomputed paid_before: the paused subscription stayed in MRR after the upgrade, and the never-paying trial's
customer subscribing later was booked as back. Each store is set up here as that release left it (its migrations up
to 0040, its rows as it wrote them: tests/old_mrr_sql.py, the webhook bodies it logged), then this release starts
on it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bot.db import bundled_migrations, migrate
from bot.subscriptions.mrr import PER_MINOR
from queries import mrr
from queries.subscriptions import Snapshot, StateRow
from tests import old_mrr_sql
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.test_mrr_review_fixes import collection_paused, paused_trial_story, resubscribed
from tests.test_subscriptions import EPOCH, FAR, post, story_event

DAY = 86_400
SUB = "sub_1ProStory0001"
LOG = """
INSERT INTO webhook_logs (event_id, event_type, status, payload, event_created_at)
SELECT e->>'id', e->>'type', 'processed', e, to_timestamp((e->>'created')::bigint)
  FROM jsonb_array_elements($1::text::jsonb) AS e
"""
DAYS = "SELECT * FROM mrr_movement_days ORDER BY day, currency"
FLAGS = "SELECT event_id, prev_mrr_units, paid_before FROM subscription_events ORDER BY 1"


def at(evt: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(evt["created"], dt.UTC)


def state(evt: dict[str, Any], rank: int, status: str, mrr_now: int) -> StateRow:
    obj = evt["data"]["object"]
    return StateRow(SUB, obj["customer"], status, mrr_now, "USD", "Pro monthly", False, None, None, None, None, None,
                    False, evt["id"], at(evt), rank)


async def old_store(dsn: str, events: Sequence[dict[str, Any]], snapshots: Sequence[Snapshot],
                    newest: StateRow) -> None:
    """The store as the release before 0042 left it having taken `events`: what it logged and stored."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0041"])
        await conn.execute(LOG, json.dumps(list(events)))
        await old_mrr_sql.insert_snapshots(conn, snapshots)
        await old_mrr_sql.upsert_states(conn, [newest])
    finally:
        await conn.close()


@asynccontextmanager
async def upgraded(dsn: str) -> AsyncIterator[Bot]:
    """This release started on it (its migrations run), its figures kept equal to a rebuild."""
    slack = await FakeSlack().start()
    try:
        async with start_bot(dsn, slack) as bot:
            kept = [await bot.deps.pool.fetch(q) for q in (DAYS, FLAGS)]
            async with bot.deps.pool.acquire() as conn:
                await conn.execute("SELECT mrr_movements_rebuild()")
            assert [await bot.deps.pool.fetch(q) for q in (DAYS, FLAGS)] == kept
            yield bot
    finally:
        await slack.stop()


async def usd(bot: Bot) -> mrr.MrrFigures:
    return {c.currency: c for c in (await mrr.summary(bot.deps.pool, now=FAR, since=EPOCH)).currencies}["USD"]


async def paused_before_the_upgrade(dsn: str) -> int:
    """Subscribed at $19.00 a month, its collection paused 10 days later: both stored at $19.00 (the old release's
    rows, as it wrote them); the time it was created."""
    created = story_event("basil", "1_created")
    paused = collection_paused(1, created["created"] + 10 * DAY)
    await old_store(dsn, [created, paused], [
        Snapshot(created["id"], SUB, at(created), 0, "active", 1900, "USD", "Pro monthly"),
        Snapshot(paused["id"], SUB, at(paused), 1, "active", 1900, "USD", "Pro monthly", 1900)],
        state(paused, 1, "active", 1900))
    return int(created["created"])


async def test_a_collection_paused_before_the_upgrade_is_out_of_mrr_after_it(empty_dsn: str) -> None:
    """As this release counts it from the start: MRR 0, no subscriber, its $19.00 lost (to come back later)."""
    await paused_before_the_upgrade(empty_dsn)
    async with upgraded(empty_dsn) as bot:
        got = await usd(bot)
        assert (got.mrr, got.active, got.new, got.churned) == (0, 0, 1900, 1900)
        assert await bot.deps.pool.fetchval("SELECT mrr_units FROM subscriptions") == 0


async def test_resuming_a_collection_paused_before_the_upgrade_is_back_in_the_figures_too(empty_dsn: str) -> None:
    """Resumed after the upgrade: the ping says back (+$19.00), and the figures count that reactivation."""
    created_at = await paused_before_the_upgrade(empty_dsn)
    async with upgraded(empty_dsn) as bot:
        texts = await post(bot, collection_paused(2, created_at + 20 * DAY, paused=False))
        got = await usd(bot)
    assert texts == ["🔁 Subscriber back: Pro monthly — MRR +$19.00"]
    assert (got.mrr, got.active, got.reactivation) == (1900, 1, 1900)


async def test_a_customer_whose_trial_never_paid_before_the_upgrade_is_new_when_subscribing_after_it(
        empty_dsn: str) -> None:
    """The old release's deletion of the paused trial says it was paying ($19.00 before it); after the upgrade it
    starts from 0, so the same customer's next subscription is new MRR, announced as a new subscriber."""
    trial = paused_trial_story()
    created, paused, deleted = trial
    await old_store(empty_dsn, trial, [
        Snapshot(created["id"], SUB, at(created), 0, "trialing", 0, "USD", "Pro monthly"),
        Snapshot(paused["id"], SUB, at(paused), 1, "paused", 0, "USD", "Pro monthly", 0),
        Snapshot(deleted["id"], SUB, at(deleted), 2, "canceled", 0, "USD", "Pro monthly", 1900)],
        state(deleted, 2, "canceled", 0))
    async with upgraded(empty_dsn) as bot:
        texts = await post(bot, resubscribed(deleted["created"] + 10 * DAY))
        got = await usd(bot)
    assert texts == ["🎉 New subscriber: Pro monthly — MRR +$19.00"]
    assert (got.new, got.reactivation, got.churned) == (1900, 0, 0)


async def test_a_deletion_that_says_it_was_paying_keeps_its_churn(empty_dsn: str) -> None:
    """Left alone: the same deletion without the trial's pause-for-want-of-a-card settings (a subscriber first seen
    at its churn, paying until then)."""
    _, _, deleted = paused_trial_story()
    deleted["data"]["object"]["trial_settings"] = {"end_behavior": {"missing_payment_method": "create_invoice"}}
    await old_store(empty_dsn, [deleted], [Snapshot(deleted["id"], SUB, at(deleted), 2, "canceled", 0, "USD",
                                                    "Pro monthly", 1900)], state(deleted, 2, "canceled", 0))
    async with upgraded(empty_dsn) as bot:
        got = await usd(bot)
        assert (got.new, got.churned, got.churned_count) == (0, 1900, 1)


async def test_a_paused_trial_with_an_invoice_that_took_money_keeps_its_churn(empty_dsn: str) -> None:
    """Left alone too: the paused trial's deletion, its subscription known to have paid (an invoice kept, 0035), still
    says it was paying: its customer's next subscription is back."""
    trial = paused_trial_story()
    created, paused, deleted = trial
    await old_store(empty_dsn, trial, [
        Snapshot(created["id"], SUB, at(created), 0, "trialing", 0, "USD", "Pro monthly"),
        Snapshot(paused["id"], SUB, at(paused), 1, "paused", 0, "USD", "Pro monthly", 0),
        Snapshot(deleted["id"], SUB, at(deleted), 2, "canceled", 0, "USD", "Pro monthly", 1900)],
        state(deleted, 2, "canceled", 0))
    conn = await asyncpg.connect(empty_dsn)
    try:
        await conn.execute("INSERT INTO subscription_invoices (invoice_id, subscription_id, paid_at, paid)"
                           " VALUES ('in_paid', $1, $2, true)", SUB, at(paused))
    finally:
        await conn.close()
    async with upgraded(empty_dsn) as bot:
        before = await bot.deps.pool.fetchval("SELECT before_mrr_units FROM subscription_events WHERE rank = 2")
        texts = await post(bot, resubscribed(deleted["created"] + 10 * DAY))
    assert before == 1900 * PER_MINOR
    assert texts == ["🔁 Subscriber back: Pro monthly — MRR +$19.00"]
