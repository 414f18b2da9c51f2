"""Refunds, captures and disputes in every order of arrival, and odd payloads that must not stop the intake.

Stripe retries, so any event of a payment may arrive before or after any other: a refund before its sale, a checkout
session after the refund, a dispute's closing before its opening. Signed webhooks through the real route.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import logging
import time
from typing import Any

import pytest

from bot.intake.events import Kind
from bot.intake.merge import absorb
from bot.stripe import sync
from bot.stripe.parse import parse_event
from queries.intake import OrderRow
from tests.conftest import Bot
from tests.reference import stripe_fixture, wrap_event
from tests.test_intake_versions import reset

NOW = int(time.time())
ACACIA, BASIL = "2024-09-30.acacia", "2025-03-31.basil"
NO_REFUNDS = {"object": "list", "data": [], "has_more": False, "total_count": 0}


def evt(relpath: str, *, event_id: str, type_: str | None = None, created: int, api_version: str | None = None,
        **patch: Any) -> dict[str, Any]:
    """A reference Stripe event (wrapped when the file is a bare object) with its id, time and object patched."""
    data = stripe_fixture(relpath)
    if data.get("object") == "event":
        e = copy.deepcopy(data)
        e["id"], e["created"] = event_id, created
        if type_:
            e["type"] = type_
    else:
        assert type_ is not None, "bare objects need an event type"
        e = wrap_event(copy.deepcopy(data), type_, event_id=event_id, created=created)
    if api_version is not None:
        e["api_version"] = api_version
    e["data"]["object"].update(patch)
    return e


def refund_event(event_id: str, created: int, **patch: Any) -> dict[str, Any]:
    """pay-rails' Charge as charge.refunded."""
    return evt("pay-rails/charge.refunded.json", event_id=event_id, type_="charge.refunded", created=created,
               **patch)


def intent_event(event_id: str, created: int, **patch: Any) -> dict[str, Any]:
    """stripe-ruby-mock's payment_intent.succeeded."""
    return evt("stripe-ruby-mock/payment_intent.succeeded.json", event_id=event_id, created=created, **patch)


def session_event(event_id: str, created: int, **patch: Any) -> dict[str, Any]:
    """stripe-ruby-mock's checkout.session.completed."""
    return evt("stripe-ruby-mock/checkout.session.completed.json", event_id=event_id, created=created, **patch)


async def arrive(bot: Bot, events: list[dict[str, Any]]) -> None:
    """Post each event signed, the delivery worker running after each, as a fast one would."""
    for e in events:
        resp = await bot.stripe(e)
        assert resp.status == 200, await resp.text()
        await bot.drain(ignore_pace=True)


def every_order(events: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """Every order of arrival of these events, by name."""
    return list(itertools.permutations(events))


def texts(bot: Bot) -> list[str]:
    """The text of every message posted, then of every edit."""
    return [p["text"] for p in bot.slack_api.posted() + bot.slack_api.posted("chat.update")]


async def order_row(bot: Bot) -> Any:
    """The one order the test's payment made."""
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM orders") == 1
    return await bot.deps.pool.fetchrow("SELECT payment_status, amount_total, amount_refunded, refunded_at FROM orders")


# ---- refunds: before the sale, and before a late completed event -------------------------------------------------


async def test_refund_arriving_before_its_sale_is_not_lost(bot: Bot) -> None:
    """charge.refunded delivered before payment_intent.succeeded (a retried sale event): the order ends up
    refunded, not counted as a full sale."""
    refund = refund_event("evt_ref", NOW - 10, id="ch_x", payment_intent="pi_x", amount=1500, amount_refunded=1500,
                          currency="usd")
    sale = intent_event("evt_sale", NOW - 600, id="pi_x", amount=1500, amount_received=1500, currency="usd",
                        latest_charge="ch_x")
    await arrive(bot, [refund, sale])
    row = await order_row(bot)
    assert (row["payment_status"], row["amount_refunded"]) == ("refunded", 1500)


async def test_late_checkout_event_does_not_undo_a_full_refund(bot: Bot) -> None:
    """PaymentIntent succeeded (t0), the checkout session completed a second later (t0+1) but its event was retried
    and arrives after the full refund (t0+50): the order stays refunded, out of revenue."""
    sale = intent_event("evt_pi", NOW - 100, id="pi_r", amount=1500, amount_received=1500, currency="usd")
    refund = refund_event("evt_ref", NOW - 50, id="ch_r", payment_intent="pi_r", amount=1500, amount_refunded=1500,
                          currency="usd")
    session = session_event("evt_cs", NOW - 99, id="cs_r", payment_intent="pi_r", amount_total=1500, currency="usd",
                            payment_status="paid")
    await arrive(bot, [sale, refund, session])
    row = await order_row(bot)
    assert (row["payment_status"], row["amount_refunded"]) == ("refunded", 1500)


def refund_story(refunded: int) -> dict[str, dict[str, Any]]:
    """A checkout's PaymentIntent (t0), its session (t0+1) and a refund of `refunded` of 15.00 (t0+50)."""
    return {
        "sale": intent_event("evt_pi", NOW - 100, id="pi_r", amount=1500, amount_received=1500, currency="usd",
                             latest_charge="ch_r"),
        "session": session_event("evt_cs", NOW - 99, id="cs_r", payment_intent="pi_r", amount_total=1500,
                                 currency="usd", payment_status="paid"),
        "refund": refund_event("evt_ref", NOW - 50, id="ch_r", payment_intent="pi_r", amount=1500,
                               amount_refunded=refunded, currency="usd"),
    }


@pytest.mark.parametrize(("refunded", "status"), [(1500, "refunded"), (500, "completed")])
async def test_a_refund_lands_on_its_order_in_every_arrival_order(bot: Bot, refunded: int, status: str) -> None:
    """Sale, checkout session and refund in each of the 6 orders: one order, refunded in full ('refunded', out of
    revenue) or in part (still 'completed', with amount_refunded), one sale ping and one refund ping."""
    events = refund_story(refunded)
    for arrival in every_order(events):
        await reset(bot)
        await arrive(bot, [events[name] for name in arrival])
        row, where = await order_row(bot), arrival
        assert (row["payment_status"], row["amount_total"], row["amount_refunded"]) == (status, 1500, refunded), where
        assert row["refunded_at"] == dt.datetime.fromtimestamp(NOW - 50, dt.UTC), where
        completed = await bot.deps.pool.fetchval(
            "SELECT sum(amount_total) FROM orders WHERE payment_status = 'completed'")
        assert completed == (None if status == "refunded" else 1500), where
        rollup = await bot.deps.pool.fetchval("SELECT coalesce(sum(revenue), 0) FROM order_rollups")
        assert rollup == (0 if status == "refunded" else 1500), where
        posted = [p["text"] for p in bot.slack_api.posted()]
        assert len(posted) == 2 and sum("New Sale" in t for t in posted) == 1, (where, posted)
        assert sum("efund" in t for t in posted) == 1, (where, posted)


# ---- captures: an older event's amount, and acacia's Refund for what was never captured ---------------------------


async def test_older_pending_checkout_does_not_overwrite_the_captured_amount(bot: Bot) -> None:
    """Manual capture of part of an authorisation: the session completed unpaid for 100.00 (t0), the PaymentIntent
    captured 50.00 (t1). Stripe redelivers the session event after the capture: the order keeps 50.00."""
    session = session_event("evt_cs_unpaid", NOW - 600, id="cs_cap", payment_intent="pi_cap", amount_total=10000,
                            currency="usd", payment_status="unpaid")
    captured = intent_event("evt_pi_cap", NOW - 60, id="pi_cap", amount=10000, amount_received=5000, currency="usd")
    await arrive(bot, [captured, session])
    row = await order_row(bot)
    assert (row["payment_status"], row["amount_total"]) == ("completed", 5000), texts(bot)


def capture_story(version: str) -> dict[str, dict[str, Any]]:
    """An authorisation of 100.00 captured for 50.00: the session completed unpaid (t0), the capture (t1) and, before
    basil, the charge.refunded Stripe sends for the 50.00 released (t1)."""
    story = {
        "session": session_event("evt_cs", NOW - 600, id="cs_cap", payment_intent="pi_cap", amount_total=10000,
                                 currency="usd", payment_status="unpaid",
                                 metadata={"product_name": "Bike rental"}),
        "capture": intent_event("evt_pi", NOW - 30, id="pi_cap", amount=10000, amount_received=5000,
                                amount_capturable=0, capture_method="manual", currency="usd", latest_charge="ch_cap",
                                metadata={"product_name": "Bike rental"}, receipt_email="rider@example.com"),
        "release": refund_event("evt_release", NOW - 30, id="ch_cap", payment_intent="pi_cap", amount=10000,
                                amount_captured=5000, amount_refunded=5000, captured=True, refunded=False,
                                refunds=NO_REFUNDS),
    }
    for e in story.values():
        e["api_version"] = version
    return story


async def test_a_partial_capture_is_a_sale_of_what_was_captured_in_every_arrival_order(bot: Bot) -> None:
    """Acacia, every order of the session, the capture and the release's charge.refunded: one completed 50.00 sale
    (the release is no refund: amount_refunded 0, no refund ping), its ping saying 50.00, never 100.00."""
    events = capture_story(ACACIA)
    for arrival in every_order(events):
        await reset(bot)
        await arrive(bot, [events[name] for name in arrival])
        row = await order_row(bot)
        assert (row["payment_status"], row["amount_total"], row["amount_refunded"]) == ("completed", 5000, 0), arrival
        said = texts(bot)
        assert said and all("$50.00" in t for t in said) and not any("efund" in t for t in said), (arrival, said)


async def test_partial_capture_release_is_not_a_refund_of_the_sale(bot: Bot) -> None:
    """Before basil Stripe records the 50.00 a capture of 50.00 of 100.00 released as a Refund (charge.refunded,
    amount 10000, amount_captured 5000, amount_refunded 5000). The customer got nothing back: a completed 50.00
    sale, no refund ping."""
    events = capture_story(ACACIA)
    await arrive(bot, [events["capture"], events["release"]])
    row = await order_row(bot)
    assert (row["payment_status"], row["amount_total"], row["amount_refunded"]) == ("completed", 5000, 0)
    assert not any("efund" in t for t in texts(bot)), texts(bot)


async def test_cancelled_authorisation_pings_no_refund(bot: Bot) -> None:
    """An authorisation never captured, cancelled or expired: before basil Stripe sends charge.refunded with
    captured false and amount_refunded = amount. No money was taken, so nothing was refunded: no ping, no order."""
    released = refund_event("evt_cancel", NOW - 5, id="ch_void", payment_intent="pi_void", amount=10000,
                            amount_captured=None, amount_refunded=10000, captured=False, refunded=True,
                            refunds=NO_REFUNDS, api_version=ACACIA)
    await arrive(bot, [released])
    assert texts(bot) == []
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM orders") == 0
    assert await bot.deps.pool.fetchval("SELECT status FROM webhook_logs WHERE event_id = 'evt_cancel'") == "ignored"


async def test_a_refund_after_a_partial_capture_counts_only_the_money_given_back(bot: Bot) -> None:
    """Acacia: 100.00 authorised, 50.00 captured, then 20.00 refunded. The Charge says amount_refunded 70.00 (the
    released 50.00 included): the order is a 50.00 sale with 20.00 refunded, pinged as a partial refund."""
    events = capture_story(ACACIA)
    refund = refund_event("evt_refund", NOW - 10, id="ch_cap", payment_intent="pi_cap", amount=10000,
                          amount_captured=5000, amount_refunded=7000, captured=True, refunded=False,
                          api_version=ACACIA)
    await arrive(bot, [events["capture"], events["release"], refund])
    row = await order_row(bot)
    assert (row["payment_status"], row["amount_total"], row["amount_refunded"]) == ("completed", 5000, 2000)
    refunds = [t for t in texts(bot) if "efund" in t]
    assert len(refunds) == 1 and "$20.00" in refunds[0] and "$50.00" in refunds[0], refunds


def charge_object(**patch: Any) -> dict[str, Any]:
    """pay-rails' Charge, patched."""
    obj = copy.deepcopy(stripe_fixture("pay-rails/charge.refunded.json")["object"])
    obj.update(patch)
    return obj


@pytest.mark.parametrize(("version", "captured", "amount_captured", "amount_refunded", "expected"), [
    (ACACIA, False, None, 10000, None),  # a cancelled authorisation: no refund
    (ACACIA, True, 5000, 5000, None),  # a partial capture's release: no refund
    (ACACIA, True, 5000, 7000, (5000, 2000)),  # 20.00 given back of the 50.00 captured
    (ACACIA, True, 10000, 10000, (10000, 10000)),  # an ordinary full refund
    ("2020-08-27", True, 5000, 5000, None),  # older versions behave as acacia
    (BASIL, True, 5000, 5000, (10000, 5000)),  # basil sends no Refund for a release: amount_refunded is refunds
    ("2025-09-30.clover", True, 10000, 2500, (10000, 2500)),
    ("2026-03-25.dahlia", True, 5000, 5000, (10000, 5000)),  # dahlia as basil: a later date, not an unknown name
    ("2026-09-30.endive", True, 5000, 5000, (10000, 5000)),  # endive too
])
def test_charge_refunded_reads_pre_basil_releases_as_no_refund(version: str, captured: bool,
                                                               amount_captured: int | None, amount_refunded: int,
                                                               expected: tuple[int, int] | None) -> None:
    """The parser: before basil, an uncaptured Charge's charge.refunded is ignored and a captured one's released
    remainder is taken off amount_refunded; basil and later are read as sent."""
    obj = charge_object(amount=10000, captured=captured, amount_captured=amount_captured,
                        amount_refunded=amount_refunded)
    raw = {**wrap_event(obj, "charge.refunded", event_id="evt_1", created=NOW), "api_version": version}
    event = parse_event(raw)
    if expected is None:
        assert event is None
    else:
        assert event is not None and event.kind is Kind.REFUND
        assert (event.amount, event.amount_refunded) == expected


@pytest.mark.parametrize(("has_invoice_key", "expected"), [(True, None), (False, 5000)])
def test_a_version_less_charge_is_read_by_its_shape(has_invoice_key: bool, expected: int | None) -> None:
    """A backfill's listed Charge carries no api_version: its `invoice` key (gone from basil on) says which rule."""
    obj = charge_object(amount=10000, captured=True, amount_captured=5000, amount_refunded=5000)
    if not has_invoice_key:
        del obj["invoice"]
    event = parse_event(wrap_event(obj, "charge.refunded", event_id="evt_1", created=NOW))
    assert (event.amount_refunded if event is not None else None) == expected


# ---- odd payloads ---------------------------------------------------------------------------------------------------


def subscription_with_a_null_item(event_id: str) -> dict[str, Any]:
    """basil's customer.subscription.created with one more item that is not an object."""
    e = copy.deepcopy(stripe_fixture("versions/basil/subscription_first/customer.subscription.created.json"))
    e["id"], e["created"] = event_id, NOW
    e["data"]["object"]["items"]["data"].append(None)
    return e


async def test_subscription_event_with_a_null_item_is_not_a_500(bot: Bot) -> None:
    """README: 400 for a malformed body, 2xx once stored; never a 5xx that Stripe retries for three days. The item
    that is not an object prices nothing; the subscription is stored."""
    e = subscription_with_a_null_item("evt_odd_item")
    resp = await bot.stripe(e)
    assert resp.status == 200, (resp.status, await resp.text())
    sub_id = e["data"]["object"]["id"]
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM subscriptions WHERE id = $1", sub_id) == 1


def test_events_api_poll_reads_such_an_event() -> None:
    """The Events API poller's submission() takes it as the webhook does, instead of raising at it every minute."""
    sub = sync.submission(subscription_with_a_null_item("evt_odd_item"), via="events_api")
    assert sub is not None and sub.event is not None and sub.event.kind is Kind.SUBSCRIPTION


def test_events_api_poll_skips_an_event_the_parser_fails_on(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A parser bug on some other odd payload: the event is logged and skipped (the reconciliation pass finds it
    again), so the poll's cursor moves past it instead of stopping there for good."""
    def broken(raw: Any) -> Any:
        raise AttributeError("'NoneType' object has no attribute 'get'")

    monkeypatch.setattr(sync, "parse_event", broken)
    with caplog.at_level(logging.ERROR, logger=sync.__name__):
        assert sync.submission(subscription_with_a_null_item("evt_odd_item"), via="events_api") is None
    assert "evt_odd_item" in caplog.text


# ---- disputes: the closing before the opening ---------------------------------------------------------------------


def dispute_story() -> dict[str, dict[str, Any]]:
    """A dispute opened (a day ago), then won: closed, and its funds reinstated, a minute ago."""
    def dispute(event_id: str, type_: str, created: int, status: str) -> dict[str, Any]:
        return evt("stripe-ruby-mock/charge.dispute.created.json", event_id=event_id, type_=type_, created=created,
                   id="dp_1", charge="ch_d", amount=1500, status=status)
    return {"created": dispute("evt_dp_open", "charge.dispute.created", NOW - 86400, "needs_response"),
            "closed": dispute("evt_dp_won", "charge.dispute.closed", NOW - 60, "won"),
            "reinstated": dispute("evt_dp_back", "charge.dispute.funds_reinstated", NOW - 61, "won")}


async def test_dispute_closed_before_created_keeps_the_outcome(bot: Bot) -> None:
    """charge.dispute.closed (won) delivered before the charge.dispute.created it follows (a retried event): the
    dispute's kept status is the later one, won, not the opening one."""
    events = dispute_story()
    await arrive(bot, [events["closed"], events["created"]])
    assert await bot.deps.pool.fetchval("SELECT status FROM disputes WHERE id = 'dp_1'") == "won"


async def test_a_dispute_keeps_its_newest_status_in_every_arrival_order(bot: Bot) -> None:
    """Opened, closed and funds reinstated in each of the 6 orders: one dispute, won, dated by its opening, pinged
    once."""
    events = dispute_story()
    for arrival in every_order(events):
        await reset(bot)
        await arrive(bot, [events[name] for name in arrival])
        rows = await bot.deps.pool.fetch("SELECT status, created_at, amount, charge_id FROM disputes")
        assert [tuple(r) for r in rows] == [("won", dt.datetime.fromtimestamp(NOW - 86400, dt.UTC), 1500, "ch_d")], \
            arrival
        posted = [p["text"] for p in bot.slack_api.posted()]
        assert len(posted) == 1 and "ispute" in json.dumps(bot.slack_api.posted()[0]), (arrival, posted)


async def test_a_dispute_known_only_by_its_closing_is_kept(bot: Bot) -> None:
    """A closed dispute whose opening event never came is still a dispute, with its outcome; nothing is pinged."""
    await arrive(bot, [dispute_story()["closed"]])
    assert await bot.deps.pool.fetchval("SELECT status FROM disputes WHERE id = 'dp_1'") == "won"
    assert bot.slack_api.posted() == []


# ---- the same rules when one payment's two orders merge -----------------------------------------------------------


def stored(order_id: str, status: str, at: int, amount: int | None, refunded: int = 0) -> OrderRow:
    """An order as the fold holds it."""
    when = dt.datetime.fromtimestamp(at, dt.UTC)
    return OrderRow(id=order_id, payment_status=status, status_at=when, created_at=when, amount_total=amount,
                    amount_refunded=refunded, currency="USD", refunded_at=when if refunded else None)


@pytest.mark.parametrize(("survivor", "loser", "expected"), [
    (stored("cs_1", "pending", NOW - 600, 10000), stored("pi_1", "completed", NOW - 30, 5000), ("completed", 5000)),
    (stored("cs_1", "completed", NOW - 30, 5000), stored("pi_1", "pending", NOW - 600, 10000), ("completed", 5000)),
    (stored("cs_1", "completed", NOW - 600, 5000), stored("pi_1", "failed", NOW - 30, 10000), ("failed", 5000)),
    (stored("pi_1", "completed", NOW - 100, 1500), stored("ch_1", "linked", NOW - 50, None, 1500), ("refunded", 1500)),
    (stored("pi_1", "completed", NOW - 100, 1500), stored("ch_1", "linked", NOW - 50, None, 500), ("completed", 1500)),
])
def test_a_merge_takes_the_amount_of_the_status_it_takes(survivor: OrderRow, loser: OrderRow,
                                                         expected: tuple[str, int]) -> None:
    """Two orders of one payment made one: the amount comes with the newer status, never from a pending or failed
    one over money taken; a refund kept on a placeholder makes a fully refunded order 'refunded'."""
    absorb(survivor, loser)
    assert (survivor.payment_status, survivor.amount_total) == expected
