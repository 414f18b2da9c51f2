"""Real-world Stripe flows beyond the common path (from the stripeflows review): a manual-capture Checkout, whose
session completes 'unpaid' and is paid by a later capture, and a bank debit's failure, told by two events in either
order of which only the PaymentIntent's says why."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import time
from typing import Any

import asyncpg
import pytest

from bot.intake.batch import ingest_batch
from tests.conftest import Bot
from tests.reference import stripe_fixture
from tests.test_failure_attempts import TZ, _subs, bank_debit_failed, undone

NOW = int(time.time())
CLOVER = "versions/clover"


def ev(relpath: str, event_id: str, at: int, *, type_: str | None = None, **patch: Any) -> dict[str, Any]:
    evt = copy.deepcopy(stripe_fixture(relpath))
    evt["id"], evt["created"] = event_id, at
    if type_:
        evt["type"] = type_
    evt["data"]["object"].update(patch)
    return evt


async def test_manual_capture_checkout_session_is_completed_once_captured(bot: Bot) -> None:
    """Checkout with payment_intent_data.capture_method=manual: the session completes 'unpaid' (authorised only), the
    money is taken by a later capture (payment_intent.succeeded). No async_payment_succeeded ever follows: the
    checkout row must not stay 'pending' (an open checkout, never converted) once the order is paid."""
    t0 = NOW - 3600
    session = ev(f"{CLOVER}/one_off/checkout.session.completed.json", "evt_mc_cs", t0, payment_status="unpaid")
    auth = ev(f"{CLOVER}/one_off/charge.succeeded.json", "evt_mc_ch", t0, captured=False, amount_captured=0)
    assert (await bot.stripe(session)).status == 200
    assert (await bot.stripe(auth)).status == 200
    await bot.drain()
    assert bot.slack_api.posted() == []  # an authorisation is no sale
    captured = ev(f"{CLOVER}/one_off/payment_intent.succeeded.json", "evt_mc_pi", NOW - 60,
                  capture_method="manual", amount_received=4900)
    assert (await bot.stripe(captured)).status == 200
    await bot.drain()
    assert len(bot.slack_api.posted()) == 1
    assert await bot.deps.pool.fetchval("SELECT payment_status FROM orders") == "completed"
    assert await bot.deps.pool.fetchval("SELECT status FROM checkout_sessions") == "completed"


async def test_manual_capture_checkout_counts_as_converted_in_sales(bot: Bot) -> None:
    """What the owner reads: the captured manual-capture checkout is a sale, yet /sales calls today's conversion
    0 of 1 (its checkout row never leaves 'pending')."""
    import re
    t0 = NOW - 120
    session = ev(f"{CLOVER}/one_off/checkout.session.completed.json", "evt_mc2_cs", t0, payment_status="unpaid",
                 created=t0 - 60)
    captured = ev(f"{CLOVER}/one_off/payment_intent.succeeded.json", "evt_mc2_pi", NOW - 30,
                  capture_method="manual", amount_received=4900)
    for e in (session, captured):
        assert (await bot.stripe(e)).status == 200
    shown = json.dumps((await bot.command("/sales", "today"))["blocks"], ensure_ascii=False)
    m = re.search(r"🎯 ([^\"]*)", shown)
    assert m and m.group(1).startswith("conversion 100% (1 of 1 checkout)"), m and m.group(1)


def _sepa_session_failed(event_id: str, created: int) -> dict[str, Any]:
    return ev(f"{CLOVER}/one_off/checkout.session.completed.json", event_id, created,
              type_="checkout.session.async_payment_failed", payment_status="unpaid")


def _sepa_intent_failed(event_id: str, created: int) -> dict[str, Any]:
    evt = copy.deepcopy(stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json"))
    evt["id"], evt["created"] = event_id, created
    obj = evt["data"]["object"]
    obj.update(id="pi_3OneOffStory0001", amount=4900, currency="usd")
    obj["last_payment_error"].update(charge="ch_3OneOffStory0001", code="insufficient_funds", decline_code=None,
                                     message="The customer's account has insufficient funds to cover this payment.")
    for c in (obj.get("charges") or {}).get("data", []):
        c.update(id="ch_3OneOffStory0001", payment_intent="pi_3OneOffStory0001")
    return evt


async def test_bank_debit_failure_tells_the_banks_reason_whichever_event_comes_first(bot: Bot) -> None:
    """A SEPA/ACH debit bounces: Stripe sends checkout.session.async_payment_failed (no reason: its payment_intent is
    an id) and payment_intent.payment_failed (the bank's reason), in either order. The one failure alert must say
    why; when the session's event is delivered first, it says only "Asynchronous payment failed"."""
    t0 = NOW - 7200
    pending = ev(f"{CLOVER}/one_off/checkout.session.completed.json", "evt_sepa_cs", t0, payment_status="unpaid")
    assert (await bot.stripe(pending)).status == 200
    assert (await bot.stripe(_sepa_session_failed("evt_sepa_cs_failed", NOW - 60))).status == 200
    assert (await bot.stripe(_sepa_intent_failed("evt_sepa_pi_failed", NOW - 60))).status == 200
    await bot.drain()
    posts = bot.slack_api.posted()
    assert len(posts) == 1, [p["text"] for p in posts]
    reason = await bot.deps.pool.fetchval("SELECT reason FROM payment_failures")
    edits = bot.slack_api.posted("chat.update")
    shown = json.dumps([posts[0], edits], ensure_ascii=False)
    assert "insufficient funds" in shown and reason and "insufficient funds" in reason, (reason, shown)


async def test_control_bank_debit_failure_reason_when_the_intent_comes_first(bot: Bot) -> None:
    """Control: the same two events, the PaymentIntent's first, give the bank's reason (passes)."""
    t0 = NOW - 7200
    pending = ev(f"{CLOVER}/one_off/checkout.session.completed.json", "evt_sepa_cs", t0, payment_status="unpaid")
    assert (await bot.stripe(pending)).status == 200
    assert (await bot.stripe(_sepa_intent_failed("evt_sepa_pi_failed", NOW - 60))).status == 200
    assert (await bot.stripe(_sepa_session_failed("evt_sepa_cs_failed", NOW - 60))).status == 200
    await bot.drain()
    posts = bot.slack_api.posted()
    assert len(posts) == 1 and "insufficient funds" in posts[0]["text"], [p["text"] for p in posts]


async def test_control_sepa_subscription_checkout_pings_when_the_first_invoice_is_paid(bot: Bot) -> None:
    """Control (passes): a subscription-mode checkout completed unpaid (SEPA) pings nothing; its first invoice.paid
    days later, then the session's async success, ping once."""
    sub = f"{CLOVER}/subscription_first"
    pending = ev(f"{sub}/checkout.session.completed.json", "evt_ss_cs", NOW - 86400 * 3, payment_status="unpaid")
    assert (await bot.stripe(pending)).status == 200
    await bot.drain()
    assert bot.slack_api.posted() == []
    for name, eid in (("invoice.paid", "evt_ss_in"), ("payment_intent.succeeded", "evt_ss_pi"),
                      ("invoice_payment.paid", "evt_ss_ip"), ("charge.succeeded", "evt_ss_ch")):
        assert (await bot.stripe(ev(f"{sub}/{name}.json", eid, NOW - 60))).status == 200
    ok = ev(f"{sub}/checkout.session.completed.json", "evt_ss_ok", NOW - 59,
            type_="checkout.session.async_payment_succeeded", payment_status="paid")
    assert (await bot.stripe(ok)).status == 200
    await bot.drain()
    assert len(bot.slack_api.posted()) == 1, [p["text"] for p in bot.slack_api.posted()]
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM orders WHERE payment_status = 'completed'") == 1


async def test_a_posted_bank_debit_failure_alert_is_edited_with_the_banks_reason(bot: Bot) -> None:
    """The session's failure is posted before the PaymentIntent's comes: the alert is edited in place to say why,
    and the one failure recorded takes the reason; no second alert."""
    pending = ev(f"{CLOVER}/one_off/checkout.session.completed.json", "evt_sepa_cs", NOW - 7200,
                 payment_status="unpaid")
    assert (await bot.stripe(pending)).status == 200
    assert (await bot.stripe(_sepa_session_failed("evt_sepa_cs_failed", NOW - 60))).status == 200
    await bot.drain()
    assert [p["text"] for p in bot.slack_api.posted()] == ["❌ Payment Failed: $49.00 — Asynchronous payment failed"]
    assert (await bot.stripe(_sepa_intent_failed("evt_sepa_pi_failed", NOW - 59))).status == 200
    await bot.drain()
    assert len(bot.slack_api.posted()) == 1
    edits = bot.slack_api.posted("chat.update")
    assert len(edits) == 1 and "insufficient funds" in edits[0]["text"], edits
    assert await bot.deps.pool.fetch("SELECT event_id, reason FROM payment_failures") == [
        ("evt_sepa_cs_failed", "The customer's account has insufficient funds to cover this payment.")]


@pytest.mark.parametrize("together", [True, False], ids=["one batch", "a batch each"])
async def test_bank_debit_failure_keeps_the_banks_reason_in_every_order(db: asyncpg.Connection,
                                                                         together: bool) -> None:
    """Whichever of the two events comes first, in one batch or two: one failure, with the PaymentIntent's reason,
    and its one ping (waiting still) says it."""
    now = dt.datetime.now(dt.UTC)
    for order in itertools.permutations(bank_debit_failed()):
        async with undone(db):
            for events in [list(order)] if together else [[e] for e in order]:
                await ingest_batch(db, _subs(events), tz=TZ, now=now)
            assert await db.fetchval("SELECT array_agg(reason) FROM payment_failures") == ["Your card was declined."]
            posts = await db.fetchval("SELECT array_agg(payload::text) FROM outbox WHERE kind = 'failure'"
                                      " AND op = 'post'")
            assert len(posts) == 1 and "Your card was declined." in posts[0], [e["type"] for e in order]


@pytest.mark.parametrize("together", [True, False], ids=["one batch", "a batch each"])
async def test_manual_capture_checkout_is_completed_once_in_every_order(db: asyncpg.Connection,
                                                                         together: bool) -> None:
    """The session completed 'unpaid' and the capture's payment_intent.succeeded, in either order, in one batch or
    two: the session completed at the capture, counted once as started and once as completed by the rollups."""
    t0, captured_at = NOW - 3600, NOW - 60
    session = ev(f"{CLOVER}/one_off/checkout.session.completed.json", "evt_mc_cs", t0, payment_status="unpaid",
                 created=t0 - 60)
    captured = ev(f"{CLOVER}/one_off/payment_intent.succeeded.json", "evt_mc_pi", captured_at,
                  capture_method="manual", amount_received=4900)
    now = dt.datetime.now(dt.UTC)
    for order in itertools.permutations([session, captured]):
        async with undone(db):
            for events in [list(order)] if together else [[e] for e in order]:
                await ingest_batch(db, _subs(events), tz=TZ, now=now)
            seen = [e["type"] for e in order]
            row = await db.fetchrow("SELECT status, completed_at FROM checkout_sessions")
            assert (row["status"], row["completed_at"]) == (
                "completed", dt.datetime.fromtimestamp(captured_at, dt.UTC)), seen
            assert await db.fetchval("SELECT payment_status FROM orders") == "completed", seen
            counts = await db.fetchrow("SELECT sum(started) AS started, sum(completed) AS completed"
                                       " FROM checkout_rollups WHERE level = 'hour'")
            assert (counts["started"], counts["completed"]) == (1, 1), seen
