"""A renewal is told whichever of its payment's events arrives first, even when the invoice comes after the sale
ping's settle window (SALE_SETTLE_SECONDS, 5 s by default): every arrival order, in every API version; and with
SUBSCRIPTION_RENEWALS=report the morning report counts them."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from typing import Any

import pytest

from bot.blocks.reports import report_message
from bot.clock import utcnow
from bot.reports.figures import MorningFigures
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, slot_for
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.test_subscriptions import RESET, post, story_event

TYPES = {"acacia": ("invoice.paid", "payment_intent.succeeded", "charge.succeeded"),
         "basil": ("invoice.paid", "invoice_payment.paid", "payment_intent.succeeded", "charge.succeeded"),
         "clover": ("invoice.paid", "invoice_payment.paid", "payment_intent.succeeded", "charge.succeeded"),
         "dahlia": ("invoice.paid", "invoice_payment.paid", "payment_intent.succeeded", "charge.succeeded"),
         "endive": ("invoice.paid", "invoice_payment.paid", "payment_intent.succeeded", "charge.succeeded")}
SALE = "💰 New Sale: $19.00 — Pro plan"
# Each event comes 6 s after the one before: past the default settle window.
GAP = "UPDATE outbox SET available_at = available_at - interval '6 seconds' WHERE status = 'pending'"


def later_hour() -> dt.datetime:
    """The bot's clock: an hour ahead, so the renewal slot it holds pings to ends 1–2 hours from the database's
    now() whatever minute the test runs at."""
    return utcnow() + dt.timedelta(hours=1)


async def arrive_apart(shop: Bot, events: list[dict[str, Any]]) -> list[str]:
    """Post the events one by one with a GAP between them (pending pings' times moved back), delivering what is due
    after each; the texts Slack got."""
    await shop.deps.pool.execute(RESET)
    shop.slack_api.calls.clear()
    posted: list[str] = []
    for evt in events:
        posted += await post(shop, evt)
        await shop.deps.pool.execute(GAP)
        posted += await post_due(shop)
    return posted


async def post_due(shop: Bot) -> list[str]:
    """Deliver what is due now."""
    before = len(shop.slack_api.posted())
    await shop.drain(until_idle=False, ignore_pace=True)
    return [p["text"] for p in shop.slack_api.posted()[before:]]


@pytest.mark.parametrize("version", ["acacia", "basil", "clover", "dahlia", "endive"])
async def test_a_late_invoice_does_not_let_a_coalesced_renewal_ping_early(dsn: str, fake_slack: FakeSlack,
                                                                          version: str) -> None:
    """Coalesce, default settle window: in every order, with each event 6 s after the last, nothing is posted
    before the hour's end; then exactly one renewal ping."""
    events = [story_event(version, f"subscription_renewal/{t}") for t in TYPES[version]]
    async with start_bot(dsn, fake_slack, clock=later_hour, SUBSCRIPTION_RENEWALS="coalesce",
                         SALE_SETTLE_SECONDS="5") as shop:
        for order in itertools.permutations(events):
            assert await arrive_apart(shop, list(order)) == [], [e["type"] for e in order]
            await shop.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
            assert await post_due(shop) == ["🔄 Renewal: $19.00 — Pro plan"], [e["type"] for e in order]


@pytest.mark.parametrize("version", ["basil", "clover", "dahlia", "endive"])
async def test_a_late_invoice_never_lets_a_report_only_renewal_ping(dsn: str, fake_slack: FakeSlack,
                                                                    version: str) -> None:
    """Report mode: in every order, 6 s apart, the renewal never pings, and its money counts once."""
    events = [story_event(version, f"subscription_renewal/{t}") for t in TYPES[version]]
    async with start_bot(dsn, fake_slack, clock=later_hour, SUBSCRIPTION_RENEWALS="report",
                         SALE_SETTLE_SECONDS="5") as shop:
        for order in itertools.permutations(events):
            assert await arrive_apart(shop, list(order)) == [], [e["type"] for e in order]
            await shop.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
            assert await post_due(shop) == [], [e["type"] for e in order]
            assert await shop.deps.pool.fetchval("SELECT sum(amount_total) FROM orders "
                                                 "WHERE payment_status = 'completed'") == 1900


async def test_a_mid_period_change_payment_is_pinged_when_its_invoice_says_so(dsn: str, fake_slack: FakeSlack) -> None:
    """A "Subscription update" PaymentIntent is held as a likely renewal; its invoice says subscription_update (a
    plan change charged at once, not a renewal), so the sale pings as soon as the invoice arrives."""
    events = {t: story_event("basil", f"subscription_renewal/{t}") for t in TYPES["basil"]}
    invoice = copy.deepcopy(events["invoice.paid"])
    invoice["data"]["object"]["billing_reason"] = "subscription_update"
    async with start_bot(dsn, fake_slack, clock=later_hour, SUBSCRIPTION_RENEWALS="coalesce",
                         SALE_SETTLE_SECONDS="5") as shop:
        first = [events["payment_intent.succeeded"], events["charge.succeeded"], events["invoice_payment.paid"]]
        assert await arrive_apart(shop, first) == []
        assert await post(shop, invoice) == [SALE]


@pytest.mark.parametrize(("mode", "line"), [("report", "🔄 Renewals yesterday: 1 renewal · $19.00"),
                                            ("coalesce", None)])
async def test_the_morning_report_counts_renewals_that_are_not_pinged(dsn: str, fake_slack: FakeSlack, mode: str,
                                                                       line: str | None) -> None:
    """SUBSCRIPTION_RENEWALS=report: the morning report says how many renewals came in yesterday and their revenue
    (pinged nowhere else); in the other modes the pings told it, so no line."""
    now = dt.datetime(2026, 3, 20, 9, 0, tzinfo=dt.UTC)
    renewal = story_event("clover", "subscription_renewal/invoice.paid")
    renewal["created"] = int((now - dt.timedelta(hours=20)).timestamp())  # yesterday, 13:00 UTC
    async with start_bot(dsn, fake_slack, clock=lambda: now, SUBSCRIPTION_RENEWALS=mode) as shop:
        assert (await shop.stripe(renewal)).status == 200
        figures = await Reporter.from_deps(shop.deps).figures(
            slot_for(ReportKind.MORNING, now.date(), shop.deps.settings), now=now)
        assert isinstance(figures, MorningFigures)
        msg = report_message(figures, tz=shop.deps.settings.tz)
        assert_valid_message(msg)
        shown = json.dumps(msg.blocks, ensure_ascii=False)
        if line is None:
            assert "Renewals" not in shown and "Renewals" not in msg.text
        else:
            assert line in shown and line.removeprefix("🔄 ") in msg.text
