"""An invoice's failed payment is pinged with the bank's reason, which only its PaymentIntent's event tells, in any
order of arrival, in one batch or several, before basil (the two name each other) and from basil on (neither does:
the same customer, amount and minute tie them) — bot/intake/declines.py."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from typing import Any

import asyncpg
import pytest

from bot.demo.events import EventFactory
from bot.intake.batch import ingest_batch
from bot.stripe.invoices import UNTOLD
from queries import errors
from tests.conftest import start_bot
from tests.fakes import FakeSlack
from tests.test_failure_attempts import (
    NOW,
    TZ,
    _at,
    _subs,
    invoice_failed_acacia,
    invoice_failed_basil,
    one_off_invoice_failed_basil,
    undone,
)

REASON = "Your card has insufficient funds."
TOLD = f"{REASON} (attempt 1)"  # Stripe's retry number kept (the invoice fixture's attempt_count is 1)
CUSTOMER = "cus_00000000000000"  # the invoice fixture's


def _declined(story: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The story's PaymentIntent declined for want of funds, paid by the invoice's customer."""
    invoice, intent = story
    obj = intent["data"]["object"]
    obj["customer"] = CUSTOMER
    obj["last_payment_error"].update(message=REASON, decline_code="insufficient_funds")
    return [invoice, intent]


STORIES = {"acacia": invoice_failed_acacia, "basil": invoice_failed_basil,
           "one-off (basil)": one_off_invoice_failed_basil}


async def _told(db: asyncpg.Connection) -> tuple[list[str], list[dict[str, Any]]]:
    """(payment_failures reasons, the failure messages queued: dedupe key, op, payload text)."""
    reasons = [r["reason"] for r in await db.fetch("SELECT reason FROM payment_failures ORDER BY event_id")]
    pings = [{"key": r["dedupe_key"], "op": r["op"], "text": r["payload"]["text"], "target": r["target_id"],
              "due": r["due"]}
             for r in await db.fetch("SELECT dedupe_key, op, payload, target_id, available_at <= now() AS due"
                                     "  FROM outbox WHERE kind = 'failure' ORDER BY id")]
    return reasons, pings


@pytest.mark.parametrize("story", STORIES)
@pytest.mark.parametrize("together", [True, False], ids=["one batch", "a batch each"])
async def test_an_invoice_failure_is_pinged_with_its_payment_intents_reason_in_every_order(
        db: asyncpg.Connection, story: str, together: bool) -> None:
    for order in itertools.permutations(_declined(STORIES[story]())):
        async with undone(db):
            for events in [list(order)] if together else [[e] for e in order]:
                await ingest_batch(db, _subs(events), tz=TZ, now=NOW)
            reasons, pings = await _told(db)
            arrival = [e["type"] for e in order]
            assert reasons == [TOLD], arrival
            # One ping, with the reason; if it was due when the reason came (a worker may have been reading it), an
            # edit to the same text follows it.
            assert [p["op"] for p in pings] in (["post"], ["post", "update"]) and pings[0]["due"], (arrival, pings)
            assert all(REASON in p["text"] for p in pings) and pings[0]["key"] == f"failure:{order_key(order)}"


def order_key(events: tuple[dict[str, Any], ...]) -> str:
    """The invoice's event id: the invoice tells the attempt."""
    return next(e["id"] for e in events if e["type"] == "invoice.payment_failed")


async def test_a_ping_waits_for_its_reason_and_goes_when_it_comes(db: asyncpg.Connection) -> None:
    invoice, intent = _declined(invoice_failed_basil())
    await ingest_batch(db, _subs([invoice]), tz=TZ, now=NOW, settle=dt.timedelta(seconds=30))
    reasons, pings = await _told(db)
    assert reasons[0].startswith(UNTOLD) and not pings[0]["due"], pings  # held for its PaymentIntent's reason
    await ingest_batch(db, _subs([intent]), tz=TZ, now=NOW, settle=dt.timedelta(seconds=30))
    reasons, pings = await _told(db)
    assert reasons == [TOLD] and len(pings) == 1 and pings[0]["due"] and REASON in pings[0]["text"], pings


async def test_a_ping_a_worker_is_sending_keeps_its_text_and_is_edited_after(db: asyncpg.Connection) -> None:
    """The worker locks no outbox row: once it has recorded its attempt the ping may be in Slack with the old text."""
    invoice, intent = _declined(invoice_failed_basil())
    await ingest_batch(db, _subs([invoice]), tz=TZ, now=NOW)
    sending = await db.fetchval("INSERT INTO delivery_attempts (outbox_id, channel) SELECT id, channel FROM outbox"
                                " WHERE kind = 'failure' RETURNING outbox_id")
    await ingest_batch(db, _subs([intent]), tz=TZ, now=NOW)
    _, pings = await _told(db)
    assert [(p["op"], p["target"]) for p in pings] == [("post", None), ("update", sending)], pings
    assert UNTOLD in pings[0]["text"] and REASON in pings[1]["text"], pings


async def test_a_ping_already_posted_is_edited_in_place(db: asyncpg.Connection) -> None:
    invoice, intent = _declined(invoice_failed_basil())
    await ingest_batch(db, _subs([invoice]), tz=TZ, now=NOW)
    posted = await db.fetchval("UPDATE outbox SET status = 'delivered', attempts = 1, slack_channel = 'C0ALERTS',"
                               " slack_ts = '1700000000.000100' WHERE kind = 'failure' RETURNING id")
    for _ in range(2):  # Stripe's redelivery of the PaymentIntent's event changes nothing more
        await ingest_batch(db, _subs([intent]), tz=TZ, now=NOW)
    _, pings = await _told(db)
    assert [(p["op"], p["target"]) for p in pings] == [("post", None), ("update", posted)], pings
    assert UNTOLD in pings[0]["text"] and REASON in pings[1]["text"], pings


@pytest.mark.parametrize("change", [
    {"customer": "cus_someone_else"},
    {"amount": 2001},
    {"currency": "eur"},
], ids=["another customer", "another amount", "another currency"])
async def test_another_payments_decline_is_not_the_invoices_reason(db: asyncpg.Connection,
                                                                    change: dict[str, Any]) -> None:
    invoice, intent = _declined(invoice_failed_basil())
    intent["data"]["object"].update(change)
    for order in itertools.permutations([invoice, intent]):
        async with undone(db):
            for e in order:
                await ingest_batch(db, _subs([e]), tz=TZ, now=NOW)
            reasons, pings = await _told(db)
            assert reasons[0].startswith(UNTOLD) and len(pings) == 1 and REASON not in pings[0]["text"], pings


async def test_a_decline_minutes_apart_is_another_attempts(db: asyncpg.Connection) -> None:
    invoice, intent = _declined(invoice_failed_basil())
    for e in (invoice, _at(intent, 600)):
        await ingest_batch(db, _subs([e]), tz=TZ, now=NOW)
    reasons, _ = await _told(db)
    assert reasons[0].startswith(UNTOLD), reasons


async def test_an_invoice_that_says_why_keeps_its_own_reason(db: asyncpg.Connection) -> None:
    invoice, intent = _declined(invoice_failed_acacia())
    invoice["data"]["object"]["last_finalization_error"] = {"message": "The customer has no payment method."}
    for e in (invoice, intent):
        await ingest_batch(db, _subs([e]), tz=TZ, now=NOW)
    reasons, pings = await _told(db)
    assert reasons == ["The customer has no payment method."] and len(pings) == 1, pings
    assert json.dumps(pings).count(REASON) == 0


@pytest.mark.parametrize("reverse", [False, True], ids=["as sent", "reversed"])
async def test_the_demos_declined_renewal_is_pinged_with_the_banks_reason(db: asyncpg.Connection,
                                                                          reverse: bool) -> None:
    subscriptions = EventFactory(random.Random(7), run="t").subscriptions()
    subscriptions.new(int(NOW.timestamp()) - 100)
    events = subscriptions.renewal_declined(0, int(NOW.timestamp()) - 30)
    reason = events[1]["data"]["object"]["last_payment_error"]["message"]
    for e in reversed(events) if reverse else events:
        await ingest_batch(db, _subs([e]), tz=TZ, now=NOW)
    reasons, pings = await _told(db)
    assert reasons == [f"{reason} (attempt 1)"] and [p["op"] for p in pings] in (["post"], ["post", "update"]), pings
    assert all(reason in p["text"] for p in pings), pings


async def test_an_incoming_webhook_which_cannot_edit_gets_no_second_ping(dsn: str, fake_slack: FakeSlack) -> None:
    """Without a bot token there is nothing to edit: the late reason is stored (and in /errors), not posted again."""
    hooks = fake_slack.url.replace("/api/", "/hooks/")
    invoice, intent = _declined(invoice_failed_basil())
    async with start_bot(dsn, fake_slack, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None,
                         SLACK_SALES_WEBHOOK_URL=hooks + "sales", SLACK_ALERT_WEBHOOK_URL=hooks + "alerts") as bot:
        for e in (invoice, intent):
            assert (await bot.stripe(e)).status == 200
            await bot.drain()
        edits = await bot.deps.pool.fetch("SELECT status FROM outbox WHERE op = 'update'")
        told = await bot.deps.pool.fetchval("SELECT reason FROM payment_failures")
    assert [c.method for c in fake_slack.calls] == ["hook:alerts"] and UNTOLD in str(fake_slack.calls[0].args)
    assert [r["status"] for r in edits] == ["delivered"] and told == TOLD


async def test_errors_counts_a_reason_once_whichever_try_it_failed(db: asyncpg.Connection) -> None:
    """/errors' top reasons group a renewal's retries: the bank's reason counts, not Stripe's try number."""
    await db.execute("INSERT INTO payment_failures (event_id, reason, created_at)"
                     " SELECT 'evt_' || n, r, $1 FROM unnest($2::text[]) WITH ORDINALITY AS t(r, n)", NOW,
                     [TOLD, f"{REASON} (attempt 2)", "Your card was declined.", f"{UNTOLD} (attempt 3)"])
    top = await errors.failure_reasons(db, start=NOW - dt.timedelta(hours=1), end=NOW + dt.timedelta(hours=1))
    assert [(r.reason, r.count) for r in top] == [(REASON, 2), (UNTOLD, 1), ("Your card was declined.", 1)]
