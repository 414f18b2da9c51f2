"""Subscriptions and MRR after the review: paused collection counts no MRR, a second churn of one subscription is
announced, a subscriber back from `unpaid` and a churned customer subscribing again are reactivation (figures and
ping: "🔁 Subscriber back"), and a trial paused for want of a card, then canceled, is no churn in any arrival
order (ChartMogul and Baremetrics: reactivation is MRR from a customer who had paid, churned, and pays again)."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from typing import Any

import asyncpg
import pytest

from bot.db import bundled_migrations, migrate
from queries import mrr
from queries.subscriptions import Snapshot, StateRow
from tests import old_mrr_sql
from tests.conftest import Bot
from tests.test_mrr_fixes import churn_story, status_change, usd
from tests.test_subscriptions import RESET, post, story_event

DAY = 86_400
CREATED_AT = 1747003596  # the basil story's customer.subscription.created
CUSTOMER = "cus_R1story0001"
CHURNED = "👋 Subscriber churned"
BACK = "🔁 Subscriber back"
FLAGS = "SELECT event_id, prev_mrr_units, paid_before FROM subscription_events ORDER BY 1"


def collection_paused(n: int, at: int, version: str = "basil", *, paused: bool = True) -> dict[str, Any]:
    """The story's subscription with its payment collection paused from the Dashboard (Stripe leaves `status`
    active and sets `pause_collection`), or that pause cleared (`paused` False)."""
    evt = story_event(version, "2_renewed")
    evt.update(id=f"evt_1PauseCollection{n}", created=at)
    pause = {"behavior": "void", "resumes_at": None}
    evt["data"]["object"]["pause_collection"] = pause if paused else None
    evt["data"]["previous_attributes"] = {"pause_collection": None if paused else pause}
    return evt


@pytest.mark.parametrize("version", ["basil", "clover"])
async def test_paused_collection_is_no_mrr_and_resuming_it_is_reactivation(bot: Bot, version: str) -> None:
    """Paused collection charges nothing: MRR 0 and no subscriber while it lasts (a churn, as a `paused` status
    is); cleared, the subscription pays again: reactivation MRR, and the ping says it is back."""
    created_at = story_event(version, "1_created")["created"]
    await post(bot, story_event(version, "1_created"))
    paused = await post(bot, collection_paused(1, created_at + 10 * DAY, version))
    got = await usd(bot)
    assert (got.mrr, got.active, got.churned) == (0, 0, 1900)
    assert [t for t in paused if t.startswith(CHURNED)], paused
    resumed = await post(bot, collection_paused(2, created_at + 20 * DAY, version, paused=False))
    got = await usd(bot)
    assert (got.mrr, got.active, got.new, got.reactivation) == (1900, 1, 1900, 1900)
    assert resumed == [f"{BACK}: Pro monthly — MRR +$19.00"]


async def test_a_subscription_back_from_unpaid_that_churns_again_is_announced(bot: Bot) -> None:
    """New, unpaid (churn, pinged), paid again (unpaid → active), then canceled: the second churn is in the figures
    (churned 2) and reaches the channel too, not dropped as a duplicate of the first farewell."""
    assert await post(bot, story_event("basil", "1_created"))
    await post(bot, status_change(1, CREATED_AT + 20 * DAY, "active", "past_due"))
    first = await post(bot, status_change(2, CREATED_AT + 25 * DAY, "past_due", "unpaid"))
    assert [t for t in first if t.startswith(CHURNED)], first
    await post(bot, status_change(3, CREATED_AT + 30 * DAY, "unpaid", "active"))
    got = await usd(bot)
    assert (got.mrr, got.reactivation) == (1900, 1900)
    second = await post(bot, story_event("basil", "5_churned"))
    got = await usd(bot)
    assert (got.mrr, got.churned_count) == (0, 2)
    assert [t for t in second if t.startswith(CHURNED)], second


async def test_unpaid_then_deleted_is_one_farewell_in_any_order(bot: Bot) -> None:
    """past_due → unpaid (the churn), then deleted: one "Subscriber churned", whichever comes first."""
    events = [story_event("basil", "1_created"), status_change(1, CREATED_AT + 20 * DAY, "active", "past_due"),
              status_change(2, CREATED_AT + 25 * DAY, "past_due", "unpaid"), story_event("basil", "5_churned")]
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [0, 3, 1, 2], [2, 3, 0, 1]):
        await bot.deps.pool.execute(RESET)
        texts: list[str] = []
        for i in order:
            texts += await post(bot, events[i])
        assert len([t for t in texts if t.startswith(CHURNED)]) == 1, (order, texts)
        assert (await usd(bot)).churned_count == 1


async def test_a_subscriber_back_from_unpaid_is_welcomed_back_not_as_new(bot: Bot) -> None:
    """First seen after install at past_due → unpaid (a churn), then unpaid → active: reactivation MRR (it had
    paid), and the ping says the subscriber is back, not "🎉 New subscriber"."""
    t0 = 1_760_000_000
    await post(bot, status_change(1, t0, "past_due", "unpaid"))
    texts = await post(bot, status_change(2, t0 + 5 * DAY, "unpaid", "active"))
    got = await usd(bot)
    assert (got.new, got.reactivation) == (0, 1900)
    assert texts == [f"{BACK}: Pro monthly — MRR +$19.00"]


def resubscribed(at: int, sub: str = "sub_1ProStoryAgain01", customer: str = CUSTOMER) -> dict[str, Any]:
    """A customer subscribing (again) to a new subscription at `at`: the story's, under new ids."""
    evt = copy.deepcopy(story_event("basil", "1_created"))
    text = json.dumps(evt).replace("sub_1ProStory0001", sub).replace("si_R1story0001", f"si_{sub[-10:]}")
    evt = json.loads(text.replace(CUSTOMER, customer))
    evt.update(id=f"evt_1Resubscribed{sub[-6:]}", created=at)
    evt["data"]["object"].update(created=at - 2, start_date=at - 2)
    return evt


async def test_a_churned_customer_who_subscribes_again_is_reactivation_not_new_mrr(bot: Bot) -> None:
    """Stripe cannot revive a canceled subscription, so a customer who comes back always does so with a new one:
    reactivation MRR, and welcomed back."""
    await post(bot, story_event("basil", "1_created"))
    await post(bot, story_event("basil", "5_churned"))
    churned_at = story_event("basil", "5_churned")["created"]
    texts = await post(bot, resubscribed(churned_at + 10 * DAY))
    got = await usd(bot)
    assert (got.mrr, got.churned) == (1900, 1900)
    assert (got.new, got.reactivation) == (1900, 1900)
    assert texts == [f"{BACK}: Pro monthly — MRR +$19.00"]


async def test_the_figures_of_a_returning_customer_do_not_depend_on_arrival_order(bot: Bot) -> None:
    """The new subscription's event first, then the old one's: the same reactivation once all are in."""
    churned_at = story_event("basil", "5_churned")["created"]
    events = [story_event("basil", "1_created"), story_event("basil", "5_churned"), resubscribed(churned_at + DAY)]
    for order in itertools.permutations(range(3)):
        await bot.deps.pool.execute(RESET)
        for i in order:
            await post(bot, events[i])
        got = await usd(bot)
        assert (got.new, got.reactivation, got.churned) == (1900, 1900, 1900), order


async def test_a_customer_still_paying_who_adds_a_subscription_is_expansion(bot: Bot) -> None:
    """Not back: the customer never left (a second subscription beside a paying one is not a reactivation); and
    not new either (0053): one subscriber, whose MRR expands (Stripe's billing analytics, ChartMogul)."""
    await post(bot, story_event("basil", "1_created"))
    texts = await post(bot, resubscribed(CREATED_AT + 5 * DAY))
    got = await usd(bot)
    assert (got.new, got.expansion, got.reactivation, got.active) == (1900, 1900, 0, 1)
    assert texts == ["➕ Subscription added: Pro monthly — MRR +$19.00"]


def paused_trial_story() -> tuple[dict[str, Any], ...]:
    """A trial that Stripe pauses at its end for want of a card, then canceled (test_mrr_fixes.churn_story), as
    Stripe sends it: its trial_settings say so (trial_settings.end_behavior.missing_payment_method = pause)."""
    events = copy.deepcopy(churn_story())
    for evt in events:
        evt["data"]["object"]["trial_settings"] = {"end_behavior": {"missing_payment_method": "pause"}}
    return events


async def test_a_paused_trial_canceled_is_no_churn_whatever_order_its_events_come_in(bot: Bot) -> None:
    """Never paid, never in MRR: no churn in the figures and no "Subscriber churned" ping, the deletion delivered
    first (a webhook retried out of order) as much as last."""
    events = paused_trial_story()
    for order in itertools.permutations(range(3)):
        await bot.deps.pool.execute(RESET)
        texts: list[str] = []
        for i in order:
            texts += await post(bot, events[i])
        got = await usd(bot)
        assert (got.churned, got.churned_count, texts) == (0, 0, []), order


async def test_a_trial_set_to_pause_that_paid_still_churns(bot: Bot) -> None:
    """The same trial settings, but the trial converted and paid: its deletion is a churn, announced."""
    created, _, deleted = paused_trial_story()
    trial_end = created["data"]["object"]["trial_end"]
    converted = copy.deepcopy(created)
    converted.update(id="evt_1PausedTrialPaid", type="customer.subscription.updated", created=trial_end + 1)
    converted["data"]["object"]["status"] = "active"
    converted["data"]["previous_attributes"] = {"status": "trialing"}
    for order in ([created, converted, deleted], [converted, deleted, created]):
        await bot.deps.pool.execute(RESET)
        texts: list[str] = []
        for evt in order:
            texts += await post(bot, evt)
        got = await usd(bot)
        assert (got.churned, got.churned_count) == (1900, 1), order
        assert [t for t in texts if t.startswith(CHURNED)], (order, texts)


def _at(days: float) -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=days)


def _state(sub: str, customer: str, mrr_now: int, event_id: str, at: dt.datetime) -> StateRow:
    return StateRow(sub, customer, "active" if mrr_now else "canceled", mrr_now, "usd", "Pro", False, None, None,
                    None, None, None, False, event_id, at, 0)


async def test_the_upgrade_books_a_returning_customer_stored_before_it_as_reactivation(empty_dsn: str) -> None:
    """The store before 0043: a customer's first subscription paid then churned, a second one paying since; and
    another customer's second subscription beside a paying first. After the upgrade the stored figures equal a
    rebuild and the return is reactivation MRR; the other is expansion (0053: subscribers are customers)."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0043"])
        await old_mrr_sql.insert_snapshots(conn, [
            Snapshot("evt_a1", "sub_a1", _at(0), 0, "active", 1900, "usd", "Pro"),
            Snapshot("evt_a1x", "sub_a1", _at(10), 2, "canceled", 0, "usd", "Pro", 1900),
            Snapshot("evt_a2", "sub_a2", _at(20), 0, "active", 1900, "usd", "Pro"),
            Snapshot("evt_b1", "sub_b1", _at(0), 0, "active", 2900, "usd", "Pro"),
            Snapshot("evt_b2", "sub_b2", _at(5), 0, "active", 2900, "usd", "Pro")])
        await old_mrr_sql.upsert_states(conn, [_state("sub_a1", "cus_a", 0, "evt_a1x", _at(10)),
                                   _state("sub_a2", "cus_a", 1900, "evt_a2", _at(20)),
                                   _state("sub_b1", "cus_b", 2900, "evt_b1", _at(0)),
                                   _state("sub_b2", "cus_b", 2900, "evt_b2", _at(5))])
        # Read from the days kept: queries/mrr.py is today's, for MRR units (0046) this store does not have yet.
        before = await conn.fetchrow("SELECT sum(new) AS new, sum(reactivation) AS reactivation FROM mrr_movement_days")
        assert (before["new"], before["reactivation"]) == (1900 * 2 + 2900 * 2, 0)
        await migrate(conn)
        got = (await mrr.summary(conn, now=_at(30), since=_at(-1))).currencies[0]
        assert (got.new, got.reactivation, got.churned, got.mrr) == (1900 + 2900, 1900, 1900, 1900 + 2900 * 2)
        assert (got.expansion, got.active) == (2900, 2)
        kept = await conn.fetch("SELECT * FROM mrr_movement_days ORDER BY day, currency")
        flags = await conn.fetch(FLAGS)
        await conn.execute("SELECT mrr_movements_rebuild()")
        assert await conn.fetch("SELECT * FROM mrr_movement_days ORDER BY day, currency") == kept
        assert await conn.fetch(FLAGS) == flags
    finally:
        await conn.close()
