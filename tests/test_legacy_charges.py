"""Payments made with Stripe's legacy Charges API (`POST /v1/charges`, no PaymentIntent): no payment_intent.* event
tells of them, so charge.succeeded / charge.captured are the sale and charge.failed the failure. A Charge with a
PaymentIntent keeps its LINK, and its failure stays its PaymentIntent's. Every order of arrival, in one batch and in
a batch each.

Shapes: stripe-ruby-mock's real 2020-08-27 charge events, and the acacia/basil/clover/dahlia stories of
tests/fixtures/stripe/versions (values only changed: `payment_intent` null, as a legacy Charge has it).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.intake.batch import ingest_batch
from bot.intake.events import Kind
from bot.stripe import endpoints
from bot.stripe.parse import HANDLED_TYPES, parse_event
from tests.reference import stripe_fixture
from tests.test_failure_attempts import _subs, undone
from tests.test_intake_versions import story_event

TZ = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)
SHAPES = ("2020-08-27", "acacia", "basil", "clover", "dahlia", "endive")
PRODUCT = "Async Python course"  # a legacy integration's only product name is the Charge's description


def _charge_event(shape: str) -> dict[str, Any]:
    """A succeeded Charge's event in that API version's shape, with its PaymentIntent."""
    if shape == "2020-08-27":
        return stripe_fixture("stripe-ruby-mock/charge.succeeded.json")
    return story_event(shape, "one_off", "charge.succeeded")


def legacy_charge(shape: str, n: int, event_type: str = "charge.succeeded", **fields: Any) -> dict[str, Any]:
    """Legacy Charge n's event: no PaymentIntent, its own ids, sold as PRODUCT to ada@example.com."""
    evt = copy.deepcopy(_charge_event(shape))
    evt.update(id=f"evt_{event_type}_{shape}_{n}", type=event_type, created=int(NOW.timestamp()) - 60 + n)
    obj = evt["data"]["object"]
    obj.update({"id": f"ch_legacy_{n}", "payment_intent": None, "description": PRODUCT,
                "receipt_email": "ada@example.com", **fields})
    return evt


def declined(shape: str, n: int) -> dict[str, Any]:
    """Legacy Charge n declined: the failure fields of stripe-ruby-mock's real charge.failed."""
    failed = stripe_fixture("stripe-ruby-mock/charge.failed.json")["data"]["object"]
    keys = ("status", "paid", "captured", "amount_captured", "balance_transaction", "failure_code",
            "failure_message", "outcome")
    return legacy_charge(shape, n, "charge.failed", **{k: failed[k] for k in keys})


async def every_arrival(db: asyncpg.Connection, events: list[dict[str, Any]],
                        check: Callable[[asyncpg.Connection, str], Any]) -> None:
    """`check` the tables after every order of arrival of `events`, in one batch and in a batch each."""
    for order in itertools.permutations(events):
        for together in (True, False):
            async with undone(db):
                for batch in [list(order)] if together else [[e] for e in order]:
                    await ingest_batch(db, _subs(batch), tz=TZ, now=NOW)
                await check(db, f"{[e['type'] for e in order]} {'one batch' if together else 'a batch each'}")


async def _sales(db: asyncpg.Connection) -> list[tuple[Any, ...]]:
    """(order, amount, product, customer) of each completed order."""
    return [tuple(r) for r in await db.fetch("SELECT id, amount_total, product_name, customer_email FROM orders"
                                             " WHERE payment_status = 'completed' ORDER BY id")]


async def _pings(db: asyncpg.Connection, kind: str) -> list[str]:
    return [r["dedupe_key"] for r in await db.fetch("SELECT dedupe_key FROM outbox WHERE kind = $1 AND op = 'post'",
                                                    kind)]


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_legacy_charge_is_one_order_and_one_sale_ping(db: asyncpg.Connection, shape: str) -> None:
    """charge.succeeded of a Charge without PaymentIntent is the sale; its redelivery and a Charge of another legacy
    sale are not the same order."""
    first, second = legacy_charge(shape, 1), legacy_charge(shape, 2, amount=1500, amount_captured=1500)

    async def check(conn: asyncpg.Connection, where: str) -> None:
        sales = await _sales(conn)
        assert [s[:2] for s in sales] == [("ch_legacy_1", 2000 if shape == "2020-08-27" else 4900),
                                         ("ch_legacy_2", 1500)], where
        assert {s[2:] for s in sales} == {(PRODUCT, "ada@example.com")}, where
        assert sorted(await _pings(conn, "sale")) == ["sale:ch_legacy_1", "sale:ch_legacy_2"], where
    await every_arrival(db, [first, second, copy.deepcopy(first)], check)


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_legacy_authorisation_is_a_sale_once_captured(db: asyncpg.Connection, shape: str) -> None:
    """capture=false: charge.succeeded (paid, not captured) is no sale; charge.captured is, for what was captured."""
    authorised = legacy_charge(shape, 1, captured=False, amount_captured=0)
    captured = legacy_charge(shape, 1, "charge.captured", amount=2000, amount_captured=1200)

    async def check(conn: asyncpg.Connection, where: str) -> None:
        assert await _sales(conn) == [("ch_legacy_1", 1200, PRODUCT, "ada@example.com")], where
        assert await _pings(conn, "sale") == ["sale:ch_legacy_1"], where
    await every_arrival(db, [authorised, captured], check)
    async with undone(db):
        await ingest_batch(db, _subs([authorised]), tz=TZ, now=NOW)
        assert await _sales(db) == [] and await _pings(db, "sale") == []


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_legacy_decline_is_one_failure_ping(db: asyncpg.Connection, shape: str) -> None:
    """charge.failed of a Charge without PaymentIntent: one failure with the bank's reason, one ping, no sale."""
    evt = declined(shape, 1)

    async def check(conn: asyncpg.Connection, where: str) -> None:
        rows = await conn.fetch("SELECT order_id, reason FROM payment_failures")
        assert [tuple(r) for r in rows] == [("ch_legacy_1", "Your card was declined.")], where
        assert await _pings(conn, "failure") == [f"failure:{evt['id']}"], where
        assert await _sales(conn) == [], where
    await every_arrival(db, [evt, copy.deepcopy(evt)], check)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_charge_with_a_payment_intent_is_read_as_before(shape: str) -> None:
    """With a PaymentIntent, charge.succeeded stays a LINK and charge.failed / charge.captured are nothing: its
    payment_intent.* events count the money and the failure, once."""
    evt = _charge_event(shape)
    intent = evt["data"]["object"]["payment_intent"]
    link = parse_event(evt)
    assert link is not None and link.kind is Kind.LINK and link.amount is None and link.refs[0] == intent
    for event_type in ("charge.failed", "charge.captured"):
        assert parse_event({**evt, "type": event_type}) is None
    failed = stripe_fixture("stripe-ruby-mock/charge.failed.json")
    assert failed["data"]["object"]["payment_intent"] and parse_event(failed) is None


async def test_a_payment_intents_decline_is_still_one_failure(db: asyncpg.Connection) -> None:
    """payment_intent.payment_failed and its Charge's charge.failed (stripe-ruby-mock's, real and of one payment):
    one failure, one ping, whatever the order."""
    intent_failed = stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json")
    charge_failed = stripe_fixture("stripe-ruby-mock/charge.failed.json")
    charge_failed["id"] = "evt_charge_failed"
    charge_failed["data"]["object"]["payment_intent"] = intent_failed["data"]["object"]["id"]

    async def check(conn: asyncpg.Connection, where: str) -> None:
        assert await conn.fetchval("SELECT count(*) FROM payment_failures") == 1, where
        assert await _pings(conn, "failure") == [f"failure:{intent_failed['id']}"], where
    await every_arrival(db, [intent_failed, charge_failed], check)


def _invoice_paid_by_legacy_charge(shape: str) -> list[dict[str, Any]]:
    """A subscription's first invoice paid by a legacy Charge: before basil the two name each other (`invoice`,
    `charge`; `payment_intent` null on both); from basil on neither does, and invoice_payment.paid with a payment
    of type charge ties them."""
    invoice = story_event(shape, "subscription_first", "invoice.paid")
    charge = legacy_charge(shape, 1, amount=1900, amount_captured=1900, description=None,
                           receipt_email="grace@example.com", customer="cus_R1story0001")
    charge["data"]["object"]["billing_details"]["email"] = "grace@example.com"
    if shape == "acacia":
        invoice["data"]["object"].update(payment_intent=None, charge="ch_legacy_1")
        charge["data"]["object"]["invoice"] = invoice["data"]["object"]["id"]
        return [invoice, charge]
    link = story_event(shape, "subscription_first", "invoice_payment.paid")
    link["data"]["object"]["payment"] = {"type": "charge", "charge": "ch_legacy_1"}
    return [invoice, charge, link]


@pytest.mark.parametrize("shape", ["acacia", "basil", "clover", "dahlia", "endive"])
async def test_an_invoice_paid_by_a_legacy_charge_is_one_order(db: asyncpg.Connection, shape: str) -> None:
    """The invoice's and the Charge's events, in any order: one order (known by either id, as the first events
    make it), the invoice's plan, the money once, one sale ping."""
    events = _invoice_paid_by_legacy_charge(shape)

    async def check(conn: asyncpg.Connection, where: str) -> None:
        sales = await _sales(conn)
        assert [s[1:] for s in sales] == [(1900, "Pro plan", "grace@example.com")], where
        assert await conn.fetchval("SELECT count(*) FROM orders") == 1, where
        refs = await conn.fetch("SELECT ref, order_id FROM payment_refs")
        assert {(r["ref"], r["order_id"]) for r in refs} == {("in_1SubFirstStory0001", sales[0][0]),
                                                              ("ch_legacy_1", sales[0][0])}, where
        assert await _pings(conn, "sale") == [f"sale:{sales[0][0]}"], where
    await every_arrival(db, events, check)
    async with undone(db):  # the Charge alone is the sale already: a late invoice.paid does not hold it back
        await ingest_batch(db, _subs([e for e in events if e["type"] == "charge.succeeded"]), tz=TZ, now=NOW)
        assert [s[1] for s in await _sales(db)] == [1900] and len(await _pings(db, "sale")) == 1


async def test_an_invoices_legacy_decline_is_the_invoices_one_failure(db: asyncpg.Connection) -> None:
    """Before basil a legacy Charge declined for an invoice names it: invoice.payment_failed tells the attempt, with
    the Charge's reason, once."""
    invoice = stripe_fixture("stripe-ruby-mock/invoice.payment_failed.json")
    invoice["data"]["object"].update(id="in_legacy", payment_intent=None, charge="ch_legacy_1")
    charge = declined("acacia", 1)
    invoice["created"] = charge["created"] + 1
    charge["data"]["object"]["invoice"] = "in_legacy"

    async def check(conn: asyncpg.Connection, where: str) -> None:
        rows = await conn.fetch("SELECT event_id, reason FROM payment_failures")
        assert [r["event_id"] for r in rows] == [invoice["id"]], where
        assert rows[0]["reason"].startswith("Your card was declined."), where
        assert await _pings(conn, "failure") == [f"failure:{invoice['id']}"], where
    await every_arrival(db, [invoice, charge], check)


def test_check_names_the_legacy_charge_events_an_endpoint_lacks() -> None:
    """`salespulse check`: an endpoint enabled for the types handled before legacy Charges were lacks two."""
    before = HANDLED_TYPES - {"charge.failed", "charge.captured"}
    review = endpoints.review({"url": "https://shop.example/webhooks/stripe", "status": "enabled",
                               "api_version": "2024-09-30.acacia", "enabled_events": sorted(before)})
    assert review.missing == ("charge.captured", "charge.failed")
    assert any("charge.captured, charge.failed" in line for line in review.lines)
