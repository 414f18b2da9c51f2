"""Refunds that failed and refunds that were canceled, waiting at once for the alerts channel, go out as one message
that counts each kind (queries/bursts.py counts every covered ping's title, not only the ten listed) and marks each
listed line by its own kind, its title left out: never a cancellation listed whole under a header of failures.

Signed webhooks through the real route, the events built as tests/test_refund_voids.py builds them (the one_off story,
its Charge as charge.refunded, fixtures3's Refund failed or canceled as Stripe sends it).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.blocks.ping_burst import PingBurstView, ping_burst_message
from bot.blocks.pings import BURST_LISTED
from bot.blocks.refund_pings import CANCELED_TITLE, FAILED_TITLE, RefundVoidView, refund_void_message
from bot.delivery.posts import burst_post
from queries import bursts
from tests.blockkit import assert_valid_message
from tests.conftest import Bot
from tests.test_intake_order_fixes import arrive
from tests.test_refund_voids import AMOUNT, VERSIONS, charge_refunded, failure_events, refund_object, sale, t0

UTC = ZoneInfo("UTC")  # the test bot's STORE_TIMEZONE
CANCELED_AT = (2, 5, 10, 11)  # of 12 refunds: two listed among the first ten, two only counted


def failures(version: str) -> list[dict[str, Any]]:
    """Twelve refunds of the payment voided, in this order: 8 failed, 4 canceled (CANCELED_AT), one event each."""
    start, out = t0(version), []
    for n in range(12):
        status = "canceled" if n in CANCELED_AT else "failed"
        refund = refund_object(f"re_mix_{n:02}", 100 * (n + 1), created=start + 100, status=status)
        out.append(failure_events(version, refund, at=start + 3600 + n)[-1])
    return out


async def queue_failures(bot: Bot, version: str) -> None:
    """The sale and its refund go out; then the twelve failures arrive before the worker runs."""
    await arrive(bot, [sale(version), charge_refunded(version, AMOUNT, at=t0(version) + 100, event_id="evt_r1")])
    bot.slack_api.calls.clear()
    for evt in failures(version):
        assert (await bot.stripe(evt)).status == 200


@pytest.mark.parametrize("version", VERSIONS)
async def test_failed_and_canceled_refunds_at_once_are_one_message_counting_each(bot: Bot, version: str) -> None:
    await queue_failures(bot, version)
    await bot.drain(ignore_pace=True)
    (msg,) = bot.slack_api.posted()
    assert msg["text"] == "⚠️ 8 refunds failed, 4 were canceled in the last minute", msg["text"]
    assert_valid_message(msg)
    assert msg["blocks"][0]["text"]["text"] == "⚠️ 8 refunds failed, 4 were canceled"
    listed = next(b["text"]["text"] for b in msg["blocks"] if b["type"] == "section").split("\n")
    assert listed == [
        "• ❌ $1.00 — The card has expired or was canceled", "• ❌ $2.00 — The card has expired or was canceled",
        "• 🚫 $3.00 — Canceled by the store", "• ❌ $4.00 — The card has expired or was canceled",
        "• ❌ $5.00 — The card has expired or was canceled", "• 🚫 $6.00 — Canceled by the store",
        *[f"• ❌ ${n}.00 — The card has expired or was canceled" for n in range(7, 11)],
        "…and 2 more"], listed
    rows = await bot.deps.pool.fetch("SELECT status, count(*) AS n FROM outbox WHERE kind = 'refund_void' GROUP BY 1")
    assert {r["status"]: r["n"] for r in rows} == {"coalesced": 12}


async def test_a_burst_resolved_from_its_attempt_record_counts_the_same(bot: Bot) -> None:
    """The look-up of a recorded attempt (a burst whose outcome is unknown, sent again) counts the kinds as its
    claim did, and renders the same message."""
    await queue_failures(bot, "clover")
    claimed = await bursts.claim(bot.deps.pool, "alerts", kind="refund_void", listed=BURST_LISTED)
    assert claimed is not None and claimed.count == 12
    assert claimed.titles == {FAILED_TITLE: 8, CANCELED_TITLE: 4}
    seen = await bursts.view(bot.deps.pool, claimed.ref, listed=BURST_LISTED)
    assert seen is not None and seen.titles == claimed.titles
    assert burst_post(seen, tz=UTC).payload == burst_post(claimed, tz=UTC).payload


AT = dt.datetime(2026, 11, 28, 19, 5, tzinfo=dt.UTC)


def void(canceled: bool) -> RefundVoidView:
    """A refund of 49.00 that failed, or one of 10.00 the store canceled."""
    return RefundVoidView(refund_id="re_1", canceled=canceled, amount=1000 if canceled else 4900, currency="USD",
                          reason="merchant_request" if canceled else "lost_or_stolen_card", occurred_at=AT,
                          charge_id="ch_1")


def burst(*canceled: bool) -> dict[str, Any]:
    """The message for these refunds (True: canceled) waiting at once, their titles counted as the claim counts."""
    texts = [refund_void_message(void(c), tz=UTC).text for c in canceled]
    titles = {t: n for t, n in ((FAILED_TITLE, canceled.count(False)), (CANCELED_TITLE, canceled.count(True))) if n}
    msg = ping_burst_message(PingBurstView("refund_void", len(canceled), AT, AT, texts, titles=titles), tz=UTC)
    assert_valid_message(msg)
    return msg.as_payload()


def listing(payload: dict[str, Any]) -> list[str]:
    return str(next(b["text"]["text"] for b in payload["blocks"] if b["type"] == "section")).split("\n")


def test_each_mix_is_counted_in_words_that_read_right() -> None:
    """One of each, all failed, all canceled: the headline names what they are, singular where one; lines are marked
    only when the burst mixes both."""
    mixed = burst(False, True)
    assert mixed["text"] == "⚠️ 1 refund failed, 1 was canceled in the last minute"
    assert listing(mixed) == ["• ❌ $49.00 — The card was reported lost or stolen",
                              "• 🚫 $10.00 — Canceled by the store"]
    failed = burst(False, False, False)
    assert failed["text"] == "❌ 3 refunds failed in the last minute"
    assert listing(failed) == ["• $49.00 — The card was reported lost or stolen"] * 3
    canceled = burst(True, True)
    assert canceled["text"] == "🚫 2 refunds canceled in the last minute"
    assert listing(canceled) == ["• $10.00 — Canceled by the store"] * 2
    shown = json.dumps([mixed, failed, canceled], ensure_ascii=False)
    assert FAILED_TITLE not in shown and CANCELED_TITLE not in shown


def test_a_title_this_release_does_not_know_falls_back_to_the_plain_wording() -> None:
    """A ping a newer release titled otherwise (its count not all failed or canceled): the plain headline."""
    texts = [refund_void_message(void(False), tz=UTC).text, "⛔ Refund reversed: $5.00 — x"]
    msg = ping_burst_message(PingBurstView("refund_void", 2, AT, AT, texts,
                                           titles={FAILED_TITLE: 1, "⛔ Refund reversed": 1}), tz=UTC)
    assert_valid_message(msg)
    assert msg.text == "⚠️ 2 refunds failed or canceled in the last minute"
