"""The owner is told of refunds: a refund that failed or was canceled gets one message in the alerts channel however
its events arrive, and a refund made again after one failed gets its own refund ping.

Signed webhooks through the real route, in every API version (acacia, basil, clover) and every order of arrival, the
events built as tests/test_refund_voids.py builds them: the one_off story of tests/fixtures/stripe/versions, its
Charge as charge.refunded, and fixtures3's Refund (stripe/openapi) failed or canceled as Stripe sends it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.blocks.elements import when
from bot.blocks.ping_burst import PingBurstView, ping_burst_message
from bot.blocks.refund_pings import (
    CANCELED_NOTE,
    CANCELED_TITLE,
    FAILED_NOTE,
    FAILED_TITLE,
    FAILURE_REASONS,
    UNKNOWN_SALE_NOTE,
    RefundVoidView,
    reason_words,
    refund_void_message,
)
from bot.intake.events import Kind
from bot.intake.fold import Fold
from bot.stripe.parse import parse_event
from tests.blockkit import assert_valid_message
from tests.conftest import Bot
from tests.test_intake_order_fixes import arrive
from tests.test_intake_versions import reset, story_event
from tests.test_refund_voids import (
    AMOUNT,
    CH,
    VERSIONS,
    charge_refunded,
    failure_events,
    refund_event,
    refund_object,
    sale,
    t0,
)

UTC = ZoneInfo("UTC")  # the test bot's STORE_TIMEZONE
NEW_YORK = ZoneInfo("America/New_York")
PRODUCT, MASKED = "Async Python course", "ada***"  # the story's checkout session names both
AT = dt.datetime(2026, 11, 28, 19, 5, tzinfo=dt.UTC)  # Sat 28 Nov 14:05 EST


def session(version: str) -> dict[str, Any]:
    """The story's checkout.session.completed: the sale that names its product and customer."""
    return story_event(version, "one_off", "checkout.session.completed")


def at(seconds: int) -> dt.datetime:
    """A Stripe `created` as an aware time."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


async def outbox(bot: Bot, kind: str) -> list[tuple[str, str]]:
    """(channel, text) of every message of `kind` queued to be posted (not the edits that tell it more)."""
    rows = await bot.deps.pool.fetch("SELECT channel, payload->>'text' AS text FROM outbox WHERE kind = $1"
                                     " AND op = 'post' ORDER BY id", kind)
    return [(r["channel"], r["text"]) for r in rows]


def posted(bot: Bot, start: str) -> list[dict[str, Any]]:
    """The messages posted to Slack whose text starts with `start`."""
    return [p for p in bot.slack_api.posted() if p["text"].startswith(start)]


async def redeliver(bot: Bot, events: list[dict[str, Any]]) -> None:
    """Stripe sends every event again (a retry, the Events API recovering them): nothing new may be posted."""
    before = len(bot.slack_api.posted())
    await arrive(bot, events)
    assert len(bot.slack_api.posted()) == before, bot.slack_api.posted()[before:]


# ---- a refund that fails or is canceled: one message per refund ---------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
async def test_a_failed_refund_is_told_once_in_every_order_of_arrival(bot: Bot, version: str) -> None:
    """Sale, full refund, and every event Stripe sends when the refund fails: in each order of arrival one message in
    the alerts channel — amount, the reason in plain words, product and masked customer once the sale is known (the
    charge and a note when the failure came first, edited to the sale once it comes), the failure's time — and none
    more when all are sent again."""
    start = t0(version)
    refund = refund_object("re_full", AMOUNT, created=start + 100, status="failed")
    events = {"sale": session(version), "refunded": charge_refunded(version, AMOUNT, at=start + 100, event_id="evt_r1"),
              **{e["type"]: e for e in failure_events(version, refund, at=start + 3600)}}
    voids = [name for name in events if name not in ("sale", "refunded")]
    for arrival in itertools.permutations(events):
        await reset(bot)
        await arrive(bot, [events[name] for name in arrival])
        where = f"{version} {arrival}"
        assert await outbox(bot, "refund_void") == [
            ("alerts", "❌ Refund failed: $49.00 — The card has expired or was canceled")], where
        (msg,) = posted(bot, "❌ Refund failed")
        assert_valid_message(msg)
        shown = json.dumps(msg["blocks"], ensure_ascii=False)
        first_void = min(arrival.index(name) for name in voids)
        sale_first = arrival.index("sale") < first_void
        assert (PRODUCT in shown, UNKNOWN_SALE_NOTE in shown) == (sale_first, not sale_first), where
        customer_known = sale_first or arrival.index("refunded") < first_void  # the charge names the customer too
        assert (MASKED in shown) == customer_known and "ada@" not in shown, where
        # What came after the post is told by editing it (tests/test_refund_void_told.py): the sale and customer.
        edits = [p for p in bot.slack_api.posted("chat.update") if p["text"].startswith("❌ Refund failed")]
        assert bool(edits) == (not sale_first), where
        final = json.dumps((edits or [msg])[-1]["blocks"], ensure_ascii=False)
        assert PRODUCT in final and MASKED in final and UNKNOWN_SALE_NOTE not in final, (where, final)
        assert CH in shown and "re_full" in shown and FAILED_NOTE.split(":")[0] in shown, where
        assert f"⏰ {when(at(start + 3600), UTC)}" in shown, where
        assert len(posted(bot, "↩️")) == 1, where  # the refund's own ping, once
        await redeliver(bot, [events[name] for name in arrival])
        assert len(await outbox(bot, "refund_void")) == 1, where


async def test_a_canceled_refund_is_told_as_a_cancellation(bot: Bot) -> None:
    """A partial refund the store canceled (refund.updated and charge.refund.updated, `merchant_request`): one message,
    worded as the store's own act rather than an alarm, and the other money untouched."""
    start = t0("clover")
    canceled = refund_object("re_c", 1000, created=start + 100, status="canceled")
    await arrive(bot, [session("clover"), charge_refunded("clover", 1000, at=start + 100, event_id="evt_r1"),
                       *failure_events("clover", canceled, at=start + 300)])
    assert await outbox(bot, "refund_void") == [("alerts", "🚫 Refund canceled: $10.00 — Canceled by the store")]
    (msg,) = posted(bot, "🚫 Refund canceled")
    assert_valid_message(msg)
    shown = json.dumps(msg["blocks"], ensure_ascii=False)
    assert CANCELED_NOTE in shown and FAILED_NOTE not in shown and PRODUCT in shown and MASKED in shown
    row = await bot.deps.pool.fetchrow("SELECT payment_status, amount_refunded FROM orders")
    assert tuple(row) == ("completed", 0)


async def test_a_failure_before_its_sale_names_the_charge_and_is_not_told_again(bot: Bot) -> None:
    """refund.failed arrives before anything else of its payment (a retried sale, a refund event lost for a while):
    the message names the charge and says the sale is not known yet; the sale, the refund and the failure's other
    event arriving later add no second message (they edit this one), and the order ends completed with nothing
    refunded."""
    start = t0("basil")
    refund = refund_object("re_early", AMOUNT, created=start + 100, status="failed")
    early, other = reversed(failure_events("basil", refund, at=start + 3600))
    await arrive(bot, [early])
    (msg,) = posted(bot, "❌ Refund failed")
    assert_valid_message(msg)
    shown = json.dumps(msg["blocks"], ensure_ascii=False)
    assert CH in shown and UNKNOWN_SALE_NOTE in shown and "*Product:*\\nUnknown" in shown, shown
    await arrive(bot, [session("basil"), charge_refunded("basil", AMOUNT, at=start + 100, event_id="evt_r1"), other])
    assert len(await outbox(bot, "refund_void")) == 1 and len(posted(bot, "❌ Refund failed")) == 1
    row = await bot.deps.pool.fetchrow("SELECT payment_status, amount_refunded FROM orders")
    assert tuple(row) == ("completed", 0)


def test_one_batch_with_every_event_of_a_failure_queues_one_message() -> None:
    """The fold itself (one batch): the failure's events, each as a different event, give one message."""
    start = t0("clover")
    refund = refund_object("re_b", 1000, created=start + 100, status="failed")
    later = refund_event("clover", "refund.updated", refund, at=start + 3700)  # a later update of the failed refund
    fold = Fold(tz=UTC, now=at(start + 4000))
    raw = [session("clover"), charge_refunded("clover", 1000, at=start + 100, event_id="evt_r1"),
           *failure_events("clover", refund, at=start + 3600), later]
    for i, evt in enumerate(raw):
        e = parse_event(evt)
        assert e is not None
        fold.apply(i, e)
    fold.finish()
    assert [(m.event_index, m.channel) for m in fold.messages if m.kind == "refund_void"] == [(2, "alerts")]


def test_a_refund_event_tells_its_status_and_reason() -> None:
    """The parser keeps what the message says: failed or canceled, and Stripe's failure_reason (None when absent)."""
    for status, reason in (("failed", "expired_or_canceled_card"), ("canceled", "merchant_request")):
        e = parse_event(refund_event("acacia", "charge.refund.updated",
                                     refund_object("re_1", 700, created=1, status=status), at=2))
        assert e is not None and e.kind is Kind.REFUND_VOID and (e.refund_status, e.failure_reason) == (status, reason)
    bare = {**refund_object("re_2", 700, created=1, status="failed"), "failure_reason": None}
    e = parse_event(refund_event("clover", "refund.failed", bare, at=2))
    assert e is not None and e.failure_reason is None


# ---- the message itself ---------------------------------------------------------------------------------------------

VIEW = RefundVoidView(refund_id="re_1", canceled=False, amount=4900, currency="USD", reason="lost_or_stolen_card",
                      occurred_at=AT, charge_id="ch_1", product="Pro Course", customer_email="stripe@example.com")


def test_the_message_says_each_documented_reason_in_plain_words() -> None:
    """Every failure_reason Stripe documents has its words; a newer code reads as Stripe spells it; none: Unknown."""
    assert set(FAILURE_REASONS) == {"lost_or_stolen_card", "expired_or_canceled_card", "unknown", "declined",
                                    "charge_for_pending_refund_disputed", "insufficient_funds", "merchant_request"}
    for code, words in FAILURE_REASONS.items():
        msg = refund_void_message(replace(VIEW, reason=code), tz=NEW_YORK)
        assert_valid_message(msg)
        assert msg.text == f"❌ Refund failed: $49.00 — {words}" and "_" not in words
    assert reason_words("bank_account_restricted") == "bank account restricted"
    assert reason_words(None) == reason_words(" ") == "Unknown"


def test_the_message_masks_escapes_and_uses_the_store_zone() -> None:
    """Customer masked, Stripe- and store-controlled text escaped, the time in the store's zone; nothing known but
    the refund still makes a valid message."""
    hostile = replace(VIEW, product="<!channel> & *free*", reason="<@U1>_x")
    msg = refund_void_message(hostile, tz=NEW_YORK)
    assert_valid_message(msg)
    shown = json.dumps(msg.as_payload(), ensure_ascii=False)
    assert "<!channel>" not in shown and "<@U1>" not in shown and "stripe@example.com" not in shown
    assert "str***" in shown and "Sat 28 Nov 14:05 EST" in shown
    bare = RefundVoidView(refund_id="re_2", canceled=True, amount=None, currency=None, reason=None, occurred_at=AT,
                          charge_id=None, sale_known=False)
    msg = refund_void_message(bare, tz=NEW_YORK)
    assert_valid_message(msg)
    assert msg.text == "🚫 Refund canceled: Unknown — Unknown" and UNKNOWN_SALE_NOTE in json.dumps(msg.as_payload())


def test_many_at_once_go_out_as_one_message() -> None:
    """Refunds failing together (a bank returning a batch) are coalesced like failed payments, each kind counted
    (tests/test_refund_burst_mix.py: from the outbox, beyond the ten listed) and each line marked by its own."""
    lines = [refund_void_message(VIEW, tz=UTC).text,
             refund_void_message(replace(VIEW, canceled=True), tz=UTC).text]
    titles = {FAILED_TITLE: 1, CANCELED_TITLE: 1}
    msg = ping_burst_message(PingBurstView("refund_void", 2, AT, AT, lines, titles=titles), tz=UTC)
    assert_valid_message(msg)
    listed = json.dumps(msg.as_payload(), ensure_ascii=False)
    assert msg.text == "⚠️ 1 refund failed, 1 was canceled in the last minute"
    # Each listed as its amount and reason, marked by its kind (the headline says what they are), without its title.
    assert "• ❌ $49.00 — The card was reported lost or stolen" in listed and FAILED_TITLE not in listed
    assert "• 🚫 $49.00 — The card was reported lost or stolen" in listed and CANCELED_TITLE not in listed


# ---- a refund made again after one failed -------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
async def test_a_refund_made_again_after_one_failed_is_pinged_in_every_order(bot: Bot, version: str) -> None:
    """Refund 10.00, it fails, refund 10.00 again: both charge.refunded say 10.00. In every order of arrival each
    refund is pinged once (two pings), the failure once, 10.00 stays refunded; sent again, nothing more."""
    start = t0(version)
    failed = refund_object("re_first", 1000, created=start + 100, status="failed")
    events = {"sale": sale(version),
              "refunded": charge_refunded(version, 1000, at=start + 100, event_id="evt_r1"),
              "failed": failure_events(version, failed, at=start + 3600)[-1],
              "refunded again": charge_refunded(version, 1000, at=start + 7200, event_id="evt_r2")}
    for arrival in itertools.permutations(events):
        await reset(bot)
        await arrive(bot, [events[name] for name in arrival])
        where = f"{version} {arrival}"
        assert [channel for channel, _ in await outbox(bot, "refund")] == ["sales", "sales"], where
        pings = posted(bot, "↩️ Partial refund: $10.00")
        assert len(pings) == 2, (where, [p["text"] for p in bot.slack_api.posted()])
        assert len(posted(bot, "❌ Refund failed")) == 1, where
        row = await bot.deps.pool.fetchrow("SELECT payment_status, amount_refunded FROM orders")
        assert tuple(row) == ("completed", 1000), where
        await redeliver(bot, [events[name] for name in arrival])
        assert len(await outbox(bot, "refund")) == 2, where
