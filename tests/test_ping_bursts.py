"""Refunds and disputes waiting at once go out as one message, as sales and failed payments do (queries/bursts.py,
bot/blocks/ping_burst.py): a bulk refund of a cancelled event no longer holds the sales channel for a second a refund,
nor the sales queued behind it; a fraud wave's disputes are one alert-channel message."""

from __future__ import annotations

import datetime as dt
import json
import random
import time

import pytest

from bot.blocks.ping_burst import WORDINGS, PingBurstView, ping_burst_message
from bot.demo.events import EventFactory
from tests.blockkit import assert_valid_message
from tests.conftest import Bot
from tests.test_intake_versions import VERSIONS_DIR

TZ = dt.UTC
AT = dt.datetime(2026, 12, 6, 14, 2, tzinfo=dt.UTC)
DISPUTE = VERSIONS_DIR.parent / "stripe-ruby-mock" / "charge.dispute.created.json"  # provenance: fixtures/PROVENANCE.md


async def test_a_bulk_refund_is_one_message_and_the_sales_behind_it_follow_at_once(bot: Bot) -> None:
    shop, now = EventFactory(random.Random(7), run="bulk"), int(time.time())
    for _ in range(12):
        assert (await bot.stripe(shop.sale(now))).status == 200
    await bot.drain(ignore_pace=True)
    bot.slack_api.calls.clear()
    for _ in range(12):
        refund = shop.refund(now)
        assert refund is not None and (await bot.stripe(refund)).status == 200
    assert (await bot.stripe(shop.sale(now))).status == 200  # a sale after the refunds, in the same channel
    await bot.drain(ignore_pace=True)
    posts = bot.slack_api.posted()
    assert [p["text"].split(":")[0] for p in posts] == ["↩️ 12 refunds in the last minute", "💰 New Sale"], posts
    listed = json.dumps(posts[0]["blocks"], ensure_ascii=False)
    assert listed.count("• Refund: ") == 10 and "…and 2 more" in listed and "↩️ Refund" not in listed, listed
    assert_valid_message(posts[0])
    rows = await bot.deps.pool.fetch("SELECT status, count(*) AS n FROM outbox WHERE kind = 'refund' GROUP BY 1")
    assert {r["status"]: r["n"] for r in rows} == {"coalesced": 12}


async def test_disputes_opened_at_once_are_one_message(bot: Bot) -> None:
    for n in range(3):
        dispute = json.loads(DISPUTE.read_text(encoding="utf-8"))
        dispute["id"], dispute["data"]["object"]["id"] = f"evt_dispute_{n}", f"dp_wave_{n}"
        assert (await bot.stripe(dispute)).status == 200
    await bot.drain(ignore_pace=True)
    posts = bot.slack_api.posted()
    disputes = [p for p in posts if "dispute" in p["text"]]
    assert [p["text"] for p in disputes] == ["⚠️ 3 disputes opened in the last minute"], [p["text"] for p in posts]
    assert_valid_message(disputes[0])
    rows = await bot.deps.pool.fetch("SELECT status, count(*) AS n FROM outbox WHERE kind = 'dispute' GROUP BY 1")
    assert {r["status"]: r["n"] for r in rows} == {"coalesced": 3}


@pytest.mark.parametrize("kind", sorted(WORDINGS))
def test_each_kinds_burst_lists_its_pings_without_their_title(kind: str) -> None:
    prefix = WORDINGS[kind].prefix
    lines = [f"{prefix}${n}.00 — something" for n in range(12)]
    msg = ping_burst_message(PingBurstView(kind=kind, count=12, first_at=AT, last_at=AT + dt.timedelta(minutes=5),
                                           lines=lines), tz=TZ).as_payload()
    assert msg["text"] == f"{WORDINGS[kind].emoji} 12 {WORDINGS[kind].noun} since 14:02"
    listed = next(b["text"]["text"] for b in msg["blocks"] if b["type"] == "section")
    assert listed.startswith("• $0.00 — something\n") and prefix.strip() not in listed, listed
    assert listed.endswith("• $9.00 — something\n…and 2 more"), listed
    assert_valid_message(msg)


def test_a_burst_of_a_kind_this_release_does_not_know_is_said_plainly() -> None:
    """Mid-upgrade, a newer release's burst of a new kind may be resolved by this one: a valid message, no crash."""
    msg = ping_burst_message(PingBurstView(kind="payout", count=3, first_at=AT, last_at=AT, lines=["a", "b"]),
                             tz=TZ).as_payload()
    assert msg["text"] == "📣 3 messages in the last minute"
    assert_valid_message(msg)
