"""One failed payment attempt is one failure — one row, one ping, one count for the alert rules — however many of
Stripe's events tell it, in any order of arrival, in one batch or several (bot/intake/failures.py)."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.intake.batch import Submission, ingest_batch
from bot.stripe.parse import parse_event
from tests.reference import failed_payment, stripe_fixture, wrap_event

TZ = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)
CREATED = int(NOW.timestamp()) - 30


def _at(evt: dict[str, Any], seconds: int = 0) -> dict[str, Any]:
    evt["created"] = CREATED + seconds
    return evt


def bank_debit_failed() -> list[dict[str, Any]]:
    """A SEPA debit that bounced: the checkout session's async_payment_failed and its PaymentIntent's failure."""
    session = copy.deepcopy(stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")["data"]["object"])
    session.update(id="cs_sepa", payment_intent="pi_sepa", payment_status="unpaid",
                   metadata={"productName": "Pro Course"})
    return [_at(wrap_event(session, "checkout.session.async_payment_failed", event_id="evt_cs_failed")),
            _at(failed_payment("evt_pi_failed", "pi_sepa", amount=2000), 1)]


def invoice_failed_acacia() -> list[dict[str, Any]]:
    """A subscription's invoice not paid, before basil: the invoice and its PaymentIntent name each other."""
    invoice = stripe_fixture("stripe-ruby-mock/invoice.payment_failed.json")
    invoice["id"] = "evt_in_failed"
    invoice["data"]["object"].update(id="in_sub", payment_intent="pi_sub", charge="ch_sub")
    return [_at(invoice), _at(failed_payment("evt_pi_sub_failed", "pi_sub", invoice="in_sub"), 1)]


def invoice_failed_basil() -> list[dict[str, Any]]:
    """The same from basil on: neither names the other; the PaymentIntent is described as a subscription's."""
    invoice = stripe_fixture("stripe-ruby-mock/invoice.payment_failed.json")
    invoice["id"] = "evt_in_basil_failed"
    invoice["data"]["object"].update(id="in_basil", payment_intent=None, charge=None)
    for key in ("payment_intent", "charge"):
        del invoice["data"]["object"][key]
    intent = failed_payment("evt_pi_basil_failed", "pi_basil", description="Subscription update")
    del intent["data"]["object"]["invoice"]
    return [_at(invoice), _at(intent, 1)]


def one_off_invoice_failed_basil() -> list[dict[str, Any]]:
    """A one-off invoice (Stripe Invoicing, no subscription) not paid, from basil on: its PaymentIntent says only
    "Payment for Invoice"."""
    invoice, intent = invoice_failed_basil()
    invoice["id"], invoice["data"]["object"]["id"] = "evt_in_once_failed", "in_once"
    invoice["data"]["object"].pop("subscription", None)
    intent = failed_payment("evt_pi_once_failed", "pi_once", description="Payment for Invoice")
    del intent["data"]["object"]["invoice"]
    return [invoice, _at(intent, 1)]


def checkout_subscription_declined_basil() -> list[dict[str, Any]]:
    """A card declined in a subscription-mode Checkout Session, from basil on: no invoice exists until the session
    completes, so the PaymentIntent's failure is the only event of the attempt."""
    intent = failed_payment("evt_pi_cs_failed", "pi_cs", description="Subscription creation",
                            payment_details={"customer_reference": None, "order_reference": "cs_test_sub"})
    del intent["data"]["object"]["invoice"]
    return [_at(intent)]


STORIES = {"bank debit": bank_debit_failed, "invoice (acacia)": invoice_failed_acacia,
           "invoice (basil)": invoice_failed_basil, "one-off invoice (basil)": one_off_invoice_failed_basil,
           "checkout decline (basil)": checkout_subscription_declined_basil}


def _subs(events: list[dict[str, Any]]) -> list[Submission]:
    return [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e)) for e in events]


@contextlib.asynccontextmanager
async def undone(db: asyncpg.Connection) -> AsyncIterator[None]:
    """A savepoint rolled back at the end, whatever happened: each arrival order starts from the same tables."""
    savepoint = db.transaction()
    await savepoint.start()
    try:
        yield
    finally:
        await savepoint.rollback()


async def _failures(db: asyncpg.Connection) -> tuple[int, list[str]]:
    """(payment_failures rows, the failure pings queued: posts, not the edit that may add a late reason)."""
    rows = await db.fetchval("SELECT count(*) FROM payment_failures")
    pings = [r["dedupe_key"] for r in await db.fetch("SELECT dedupe_key FROM outbox WHERE kind = 'failure'"
                                                     " AND op = 'post'")]
    return rows, pings


@pytest.mark.parametrize("story", STORIES)
@pytest.mark.parametrize("together", [True, False], ids=["one batch", "a batch each"])
async def test_each_story_of_one_failed_attempt_is_one_failure_in_every_order(
        db: asyncpg.Connection, story: str, together: bool) -> None:
    for n, order in enumerate(itertools.permutations(STORIES[story]())):
        async with undone(db):
            batches = [list(order)] if together else [[e] for e in order]
            for events in batches:
                await ingest_batch(db, _subs(events), tz=TZ, now=NOW)
            rows, pings = await _failures(db)
            assert (rows, len(pings)) == (1, 1), (n, [e["type"] for e in order], pings)


async def test_a_second_card_declined_is_a_second_attempt(db: asyncpg.Connection) -> None:
    """The same PaymentIntent declined twice, seconds apart, with two different charges: two failures, two pings;
    the same decline delivered under another event id (a replay tool, say) is not a third."""
    first = _at(failed_payment("evt_decline_1", "pi_card"))
    second = _at(failed_payment("evt_decline_2", "pi_card"), 5)
    retried = second["data"]["object"]  # the newest charge first, as Stripe lists them
    retried["last_payment_error"]["charge"] = retried["charges"]["data"][0]["id"] = "ch_card_second_try"
    again = _at(copy.deepcopy(first), 2)
    again["id"] = "evt_decline_1_again"
    await ingest_batch(db, _subs([first]), tz=TZ, now=NOW)
    await ingest_batch(db, _subs([second, again]), tz=TZ, now=NOW)
    rows, pings = await _failures(db)
    assert rows == 2 and sorted(pings) == ["failure:evt_decline_1", "failure:evt_decline_2"]


async def test_a_failure_without_a_charge_then_a_decline_are_two_attempts(db: asyncpg.Connection) -> None:
    """A failed 3-D Secure check names no charge; the card declined 20 s later is another PaymentIntent failure:
    two attempts, in one batch or two — a missing charge joins only events of different types."""
    for together in (True, False):
        async with undone(db):
            unauthenticated = _at(failed_payment("evt_3ds", "pi_3ds"))
            unauthenticated["data"]["object"]["last_payment_error"]["charge"] = None
            unauthenticated["data"]["object"]["charges"] = {"data": []}
            declined = _at(failed_payment("evt_3ds_then_declined", "pi_3ds"), 20)
            declined["data"]["object"]["last_payment_error"]["charge"] = "ch_3ds_second"
            declined["data"]["object"]["charges"]["data"][0]["id"] = "ch_3ds_second"
            batches = [[unauthenticated, declined]] if together else [[unauthenticated], [declined]]
            for events in batches:
                await ingest_batch(db, _subs(events), tz=TZ, now=NOW)
            assert await _failures(db) == (2, ["failure:evt_3ds", "failure:evt_3ds_then_declined"]), together


async def test_failures_of_different_payments_all_count(db: asyncpg.Connection) -> None:
    """Ten declined payments in the same second are ten failures: the rule only joins one payment's events."""
    events = [_at(failed_payment(f"evt_many_{n}", f"pi_many_{n}")) for n in range(10)]
    await ingest_batch(db, _subs(events[:4]), tz=TZ, now=NOW)
    await ingest_batch(db, _subs(events[4:]), tz=TZ, now=NOW)
    assert await _failures(db) == (10, [f"failure:evt_many_{n}" for n in range(10)])


@pytest.mark.parametrize(("fields", "drop_invoice", "expected"), [
    ({}, False, False),  # a card payment before basil: `invoice` is there, and null
    ({}, True, False),  # the same from basil on: no `invoice` key, and no subscription's description
    ({"invoice": "in_1"}, False, True),
    ({"description": "Subscription creation"}, True, True),
    ({"description": "Subscription update"}, True, True),
    ({"description": "Payment for Invoice"}, True, True),
    ({"description": "Subscription creation", "payment_details": {"order_reference": "cs_test_1"}}, True, False),
    ({"description": "Subscription creation", "payment_details": {"order_reference": "order-42"}}, True, True),
])
def test_an_invoices_payment_intent_leaves_the_failure_to_the_invoice(fields: dict[str, Any], drop_invoice: bool,
                                                                      expected: bool) -> None:
    evt = failed_payment("evt_hint", "pi_hint", **fields)
    if drop_invoice:
        del evt["data"]["object"]["invoice"]
    event = parse_event(evt)
    assert event is not None and event.invoice_attempt is expected
