"""A dispute before its sale, a refund before its sale: in every order of arrival, batches of one and one batch, the
dispute ends on its order and the refund counts once, only once the sale is known (README "Connect Stripe")."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.intake.batch import Submission, ingest_batch
from bot.stripe.parse import parse_event
from tests.conftest import Bot
from tests.test_intake_order_fixes import (
    BASIL,
    NOW,
    arrive,
    every_order,
    evt,
    intent_event,
    refund_story,
    session_event,
)
from tests.test_intake_versions import story_event

RESET = """
TRUNCATE orders, payment_refs, payment_failures, disputes, checkout_sessions, webhook_logs, outbox, delivery_attempts,
         delivery_errors, order_rollups, sales_rollups, checkout_rollups, customer_sketches, channel_pace CASCADE
"""
# Every rollup as the triggers kept it (tests/test_rollups.py), compared with what sales_rollups_rebuild() computes.
ROLLUPS = """
SELECT (SELECT array_agg(r ORDER BY r) FROM (SELECT bucket, currency, orders, revenue FROM order_rollups
                                              WHERE orders <> 0 OR revenue <> 0) AS r)::text,
       (SELECT array_agg(r ORDER BY r) FROM sales_rollups AS r
         WHERE orders <> 0 OR revenue <> 0 OR refunds <> 0 OR refunded <> 0)::text
"""


async def reset(bot: Bot) -> None:
    """An empty store, rollups included: the next arrival order starts from nothing."""
    await bot.deps.pool.execute(RESET)
    bot.slack_api.calls.clear()


async def one_batch(bot: Bot, events: list[dict[str, Any]]) -> None:
    """All the events applied as one batch, in this order."""
    subs = [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e)) for e in events]
    async with bot.deps.pool.acquire() as conn:
        await ingest_batch(conn, subs, tz=ZoneInfo("UTC"), now=dt.datetime.now(dt.UTC))


# ---- a dispute before its sale ------------------------------------------------------------------------------------


def dispute_event(event_id: str, created: int, **patch: Any) -> dict[str, Any]:
    """stripe-ruby-mock's charge.dispute.created, patched."""
    return evt("stripe-ruby-mock/charge.dispute.created.json", event_id=event_id, type_="charge.dispute.created",
               created=created, **patch)


def checkout_story() -> dict[str, dict[str, Any]]:
    """A checkout paid (its session, its PaymentIntent with the charge) and a dispute of the charge."""
    return {
        "dispute": dispute_event("evt_dp", NOW - 10, id="dp_1", charge="ch_d", payment_intent="pi_d", amount=1500),
        "session": session_event("evt_cs", NOW - 99, id="cs_d", payment_intent="pi_d", amount_total=1500,
                                 currency="usd", payment_status="paid"),
        "intent": intent_event("evt_pi", NOW - 100, id="pi_d", amount=1500, amount_received=1500, currency="usd",
                               latest_charge="ch_d"),
    }


def basil_story() -> dict[str, dict[str, Any]]:
    """basil: a renewal invoice, the invoice_payment.paid that ties it to its PaymentIntent, and a dispute of the
    PaymentIntent's charge (it shares no id with the invoice: only the link names both)."""
    story = {t: story_event("basil", "subscription_renewal", t) for t in ("invoice.paid", "invoice_payment.paid")}
    story["dispute"] = dispute_event("evt_dp", NOW - 10, id="dp_1", charge="ch_3SubRenewStory0001",
                                     payment_intent="pi_3SubRenewStory0001", amount=1900, api_version=BASIL)
    return story


async def dispute_on_its_order(bot: Bot, where: Any) -> None:
    rows = await bot.deps.pool.fetch("SELECT d.id, d.order_id, o.id AS found FROM disputes AS d"
                                     " LEFT JOIN orders AS o ON o.id = d.order_id")
    orders = await bot.deps.pool.fetch("SELECT id FROM orders WHERE payment_status <> 'linked'")
    assert len(orders) == 1, where
    assert [(r["id"], r["found"]) for r in rows] == [("dp_1", orders[0]["id"])], where
    unlinked = await bot.deps.pool.fetchval("SELECT count(*) FROM disputes WHERE order_id IS NULL")
    assert unlinked == 0, where


@pytest.mark.parametrize("story", [checkout_story, basil_story])
async def test_a_dispute_ends_on_its_order_in_every_arrival_order(bot: Bot, story: Any) -> None:
    """Each order of arrival, batches of one and one batch: the dispute names the order its sale made, so the order's
    dispute count (the fees job, /sales, reports) includes it whether it came before or after the sale."""
    events = story()
    for arrival in every_order(events):
        for batched in (False, True):
            await reset(bot)
            await (one_batch if batched else arrive)(bot, [events[name] for name in arrival])
            await dispute_on_its_order(bot, (arrival, batched))


async def test_unlinked_disputes_are_found_through_their_partial_index(bot: Bot) -> None:
    """A batch of new sales looks only at disputes still waiting for their order, through the index that holds only
    them: no scan of every dispute."""
    await reset(bot)
    async with bot.deps.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN UPDATE disputes AS d SET order_id = NULL WHERE d.order_id IS NULL"
            " AND d.refs ?| ARRAY(SELECT 'pi_x'::text)"))
    assert "disputes_unlinked_refs_idx" in plan, plan


# ---- a refund before its sale -------------------------------------------------------------------------------------


async def refunds_counted(bot: Bot) -> tuple[int, int]:
    """(refunds in the day rollups, orders /sales counts as refunded): what "Refunds" shows."""
    rolled = await bot.deps.pool.fetchval("SELECT coalesce(sum(refunds), 0) FROM sales_rollups WHERE level = 'day'")
    raw = await bot.deps.pool.fetchval("SELECT count(*) FROM orders WHERE refunded_at IS NOT NULL")
    return int(rolled), int(raw)


async def rollups_equal_a_rebuild(bot: Bot, where: Any) -> None:
    async with bot.deps.pool.acquire() as conn, conn.transaction():
        kept = await conn.fetchrow(ROLLUPS)
        await conn.execute("SELECT sales_rollups_rebuild()")
        assert list(kept) == list(await conn.fetchrow(ROLLUPS)), where


async def test_a_refund_before_its_sale_counts_nothing_until_the_sale_then_once(bot: Bot) -> None:
    """Sale, session and a full refund in each order of arrival, one event at a time: the refund counts in the
    rollups and /sales only once a sale event has come, then exactly once; the rollups always equal a rebuild."""
    events = refund_story(1500)
    for arrival in every_order(events):
        await reset(bot)
        for n, name in enumerate(arrival, 1):
            await arrive(bot, [events[name]])
            seen = arrival[:n]
            expected = int("refund" in seen and ("sale" in seen or "session" in seen))
            assert await refunds_counted(bot) == (expected, expected), seen
            await rollups_equal_a_rebuild(bot, seen)


async def test_a_refund_before_its_sale_in_one_batch_counts_once(bot: Bot) -> None:
    """The same in one batch: the refund alone counts nothing; with its sale, in any order, once."""
    events = refund_story(1500)
    await reset(bot)
    await one_batch(bot, [events["refund"]])
    assert await refunds_counted(bot) == (0, 0)
    for arrival in every_order(events):
        await reset(bot)
        await one_batch(bot, [events[name] for name in arrival])
        assert await refunds_counted(bot) == (1, 1), arrival
        await rollups_equal_a_rebuild(bot, arrival)
