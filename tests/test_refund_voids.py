"""A refund that fails or is canceled after charge.refunded counted it: its money came back, so the order's refunded
amount drops again — in every API version (acacia to endive) and every order of arrival, the same tables.

Signed webhooks through the real route. The payment is the one_off story of tests/fixtures/stripe/versions (its
PaymentIntent and Charge as that version renders them); charge.refunded is that Charge with `amount_refunded` set;
the refund events carry the Refund of stripe/openapi fixtures3.json (key-for-key the same at the acacia, basil,
clover and dahlia commits, less the three keys added after them) with the values Stripe gives a failed or canceled
refund.
Before 2024-10-28.acacia Stripe tells a charge's refund failing by charge.refund.updated only; later also by
refund.failed (a cancellation: refund.updated), one failure arriving as several events.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from typing import Any

import pytest

from bot.intake.events import Kind
from bot.stripe.parse import HANDLED_TYPES, parse_event
from bot.stripe.sync import handled
from tests.conftest import Bot
from tests.reference import stripe_fixture, wrap_event
from tests.test_intake_order_fixes import arrive
from tests.test_intake_versions import reset, story_event

VERSIONS = ("acacia", "basil", "clover", "dahlia", "endive")
PI, CH, AMOUNT = "pi_3OneOffStory0001", "ch_3OneOffStory0001", 4900
ADDED_AFTER_CLOVER = ("customer", "customer_account", "payment_method")  # not in the three versions' Refund
TABLES = {
    "orders": "SELECT id, payment_status, amount_total, amount_refunded, currency, created_at, refunded_at, status_at,"
              " refund_ledger FROM orders ORDER BY id",
    "rollups": "SELECT level, bucket, currency, orders, revenue, refunds, refunded FROM sales_rollups ORDER BY 1, 2, 3",
    "quarters": "SELECT bucket, currency, orders, revenue FROM order_rollups WHERE orders <> 0 ORDER BY 1, 2",
}


def sale(version: str) -> dict[str, Any]:
    """The story's payment_intent.succeeded (at t0)."""
    return story_event(version, "one_off", "payment_intent.succeeded")


def t0(version: str) -> int:
    """When the story's payment succeeded."""
    return int(sale(version)["created"])


def charge_refunded(version: str, refunded: int, *, at: int, event_id: str) -> dict[str, Any]:
    """charge.refunded: the version's Charge with `amount_refunded` (cumulative) at `at`."""
    evt = copy.deepcopy(story_event(version, "one_off", "charge.succeeded"))
    evt.update(id=event_id, type="charge.refunded", created=at)
    evt["data"]["object"].update(amount_refunded=refunded, refunded=refunded >= AMOUNT)
    return evt


def refund_object(refund_id: str, amount: int, *, created: int, status: str) -> dict[str, Any]:
    """fixtures3's Refund of this payment, `status` failed or canceled as Stripe sends such a refund (both carry
    `failure_reason` and `failure_balance_transaction`: https://docs.stripe.com/refunds#failed-refunds)."""
    refund = copy.deepcopy(stripe_fixture("openapi/fixtures3.json")["resources"]["refund"])
    for key in ADDED_AFTER_CLOVER:
        refund.pop(key, None)
    refund.update(id=refund_id, amount=amount, charge=CH, payment_intent=PI, created=created, currency="usd",
                  status=status, balance_transaction=f"txn_{refund_id}")
    if status in ("failed", "canceled"):
        refund.update(failure_reason="expired_or_canceled_card" if status == "failed" else "merchant_request",
                      failure_balance_transaction=f"txn_{refund_id}_back")
    return refund


def refund_event(version: str, event_type: str, refund: dict[str, Any], *, at: int) -> dict[str, Any]:
    """A refund event of `event_type` around `refund`, in the version's envelope."""
    evt = wrap_event(refund, event_type, event_id=f"evt_{event_type}_{refund['id']}_{at}", created=at)
    evt["api_version"] = story_event(version, "one_off", "payment_intent.succeeded")["api_version"]
    return evt


def failure_events(version: str, refund: dict[str, Any], *, at: int) -> list[dict[str, Any]]:
    """What Stripe sends when `refund` fails: charge.refund.updated, and from 2024-10-28.acacia on refund.failed
    too (a cancellation: refund.updated)."""
    events = [refund_event(version, "charge.refund.updated", refund, at=at)]
    if version != "acacia":  # 2024-09-30.acacia: refund.* only for refunds without a charge
        later = "refund.failed" if refund["status"] == "failed" else "refund.updated"
        events.append(refund_event(version, later, refund, at=at))
    return events


async def tables(bot: Bot) -> dict[str, list[tuple[Any, ...]]]:
    """The tables a failed refund touches, as rows."""
    return {name: [tuple(r) for r in await bot.deps.pool.fetch(sql)] for name, sql in TABLES.items()}


async def every_arrival(bot: Bot, events: dict[str, dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Post the events in each order of arrival from an empty store; every order leaves the same tables (returned),
    one sale ping, no failed-payment ping, and one message for the refund that failed or was canceled."""
    first: dict[str, list[tuple[Any, ...]]] | None = None
    for arrival in itertools.permutations(events):
        await reset(bot)
        await bot.deps.pool.execute("TRUNCATE sales_rollups")  # reset() leaves the coarse rollups
        await arrive(bot, [events[name] for name in arrival])
        got = await tables(bot)
        assert first is None or got == first, (arrival, got, first)
        first = got
        posted = [p["text"] for p in bot.slack_api.posted()]
        assert sum("New Sale" in t for t in posted) == 1, (arrival, posted)
        assert not any(t.startswith("❌ Payment Failed") for t in posted), (arrival, posted)
        assert sum(t.startswith(("❌ Refund failed", "🚫 Refund canceled")) for t in posted) == 1, (arrival, posted)
    assert first is not None
    return first


def order_of(snapshot: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    """The one order of the payment, by column."""
    (row,) = snapshot["orders"]
    names = ("id", "payment_status", "amount_total", "amount_refunded", "currency", "created_at", "refunded_at",
             "status_at", "refund_ledger")
    return dict(zip(names, row, strict=True))


def at(seconds: int) -> dt.datetime:
    """A Stripe `created` as the tables hold it."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_full_refund_that_fails_leaves_the_order_completed_in_every_order(bot: Bot, version: str) -> None:
    """Sale, a full refund, then its failure (each event Stripe sends for it): whatever the order of arrival the
    order is completed again, nothing refunded, its revenue back in the rollups."""
    start = t0(version)
    refund = refund_object("re_full", AMOUNT, created=start + 100, status="failed")
    events = {"sale": sale(version), "refunded": charge_refunded(version, AMOUNT, at=start + 100, event_id="evt_r1"),
              **{e["type"]: e for e in failure_events(version, refund, at=start + 3600)}}
    snapshot = await every_arrival(bot, events)
    order = order_of(snapshot)
    assert (order["payment_status"], order["amount_total"], order["amount_refunded"], order["refunded_at"]) == (
        "completed", AMOUNT, 0, None)
    # The refund counts in its hour and its failure an hour later gives it back (refund_steps, migration 0042): the
    # day nets to nothing
    assert {(r[0], r[4], r[5], r[6]) for r in snapshot["rollups"]} == {
        ("day", AMOUNT, 0, 0), ("hour", AMOUNT, 1, AMOUNT), ("hour", 0, -1, -AMOUNT)}
    await bot.deps.pool.execute("SELECT sales_rollups_rebuild()")  # the triggers kept what a rebuild makes
    assert (await tables(bot))["rollups"] == snapshot["rollups"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_refund_after_one_that_failed_is_counted_once(bot: Bot, version: str) -> None:
    """A full refund fails; a second refund of 10.00 follows, and its charge.refunded says 10.00 (Stripe no longer
    counts the failed one). In every order: 10.00 refunded, at the second refund's time, and still completed — the
    failed refund neither stays counted nor comes off the second."""
    start = t0(version)
    failed = refund_object("re_first", AMOUNT, created=start + 100, status="failed")
    events = {"sale": sale(version),
              "refunded": charge_refunded(version, AMOUNT, at=start + 100, event_id="evt_r1"),
              "failed": failure_events(version, failed, at=start + 3600)[-1],
              "refunded again": charge_refunded(version, 1000, at=start + 7200, event_id="evt_r2")}
    order = order_of(await every_arrival(bot, events))
    assert (order["payment_status"], order["amount_refunded"], order["refunded_at"]) == (
        "completed", 1000, at(start + 7200))


@pytest.mark.parametrize("version", ["acacia", "clover"])
async def test_a_canceled_partial_refund_leaves_the_other_standing(bot: Bot, version: str) -> None:
    """Two partial refunds (10.00, then 20.00: 30.00 in all); the first is canceled later. In every order 20.00 stays
    refunded, whether the charge.refunded that counted both arrives before the cancellation or after."""
    start = t0(version)
    canceled = refund_object("re_a", 1000, created=start + 100, status="canceled")
    events = {"sale": sale(version),
              "first": charge_refunded(version, 1000, at=start + 100, event_id="evt_ra"),
              "second": charge_refunded(version, 3000, at=start + 200, event_id="evt_rb"),
              "canceled": failure_events(version, canceled, at=start + 300)[-1]}
    order = order_of(await every_arrival(bot, events))
    assert (order["payment_status"], order["amount_refunded"], order["refunded_at"]) == (
        "completed", 2000, at(start + 200))


async def test_an_order_stored_before_the_ledger_takes_a_failed_refund(bot: Bot) -> None:
    """An order refunded 10.00 then 20.00 before migration 0037 (no ledger: amount_refunded 30.00 is all there is)
    loses only the refund that fails afterwards: 20.00 stays refunded."""
    start = t0("basil")
    await arrive(bot, [sale("basil"), charge_refunded("basil", 1000, at=start + 100, event_id="evt_ra"),
                       charge_refunded("basil", 3000, at=start + 200, event_id="evt_rb")])
    await bot.deps.pool.execute("UPDATE orders SET refund_ledger = '{}'")
    failed = refund_object("re_a", 1000, created=start + 100, status="failed")
    await arrive(bot, failure_events("basil", failed, at=start + 3600))
    row = await bot.deps.pool.fetchrow("SELECT payment_status, amount_refunded, refunded_at FROM orders")
    assert tuple(row) == ("completed", 2000, at(start + 200))


@pytest.mark.parametrize("event_type", ["charge.refund.updated", "refund.failed", "refund.updated"])
def test_only_a_failed_or_canceled_refund_is_read(event_type: str) -> None:
    """Each refund event type gives a REFUND_VOID for a failed or canceled Refund, with the refund's id, amount and
    own creation time and the payment's ids; a pending or succeeded one is nothing to record."""
    for status in ("failed", "canceled"):
        event = parse_event(refund_event("clover", event_type, refund_object("re_1", 700, created=1_762_000_100,
                                                                             status=status), at=1_762_003_600))
        assert event is not None and event.kind is Kind.REFUND_VOID
        assert (event.refund_id, event.amount, event.currency, event.refs) == ("re_1", 700, "USD", (PI, CH))
        assert event.refund_created_at == at(1_762_000_100) and event.product is None and not event.metadata
    for status in ("pending", "succeeded", "requires_action"):
        refund = refund_object("re_1", 700, created=1_762_000_100, status=status)
        assert parse_event(refund_event("clover", event_type, refund, at=1_762_003_600)) is None
    orphan = {**refund_object("re_2", 700, created=1, status="failed"), "charge": None, "payment_intent": None}
    assert parse_event(refund_event("clover", event_type, orphan, at=2)) is None  # a customer balance's refund


def test_the_events_api_poll_feeds_the_refund_events() -> None:
    """The poll lists every type and keeps the handled ones (bot/stripe/sync.py `handled`): the refund events too."""
    assert {"charge.refund.updated", "refund.failed", "refund.updated"} <= HANDLED_TYPES
    assert all(handled({"type": t}) for t in ("charge.refund.updated", "refund.failed", "refund.updated"))


def test_stripe_ruby_mocks_refund_update_reads_when_it_failed() -> None:
    """The reference charge.refund.updated (a real envelope) as a failed refund: REFUND_VOID on its charge."""
    evt = stripe_fixture("stripe-ruby-mock/charge.refund.updated.json")
    assert parse_event(evt) is None  # as captured: succeeded
    evt["data"]["object"]["status"] = "failed"
    event = parse_event(json.loads(json.dumps(evt)))
    assert event is not None and event.refs == ("ch_000000000000000000000000",) and event.amount == 100
