"""SUBSCRIPTION_RENEWALS=coalesce (the default) holds a renewal's sale ping to the end of the hour: what goes out then
says renewal — "🔄 Renewal" alone, "🔄 N renewals" for several — never "New Sale", the words of new business; new
sales waiting at the same moment share the one summary, counted and totalled apart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.blocks.pings import BURST_LISTED
from queries import bursts
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.test_subscriptions import post, story_event

DUE = "UPDATE outbox SET available_at = now() WHERE status = 'pending'"


def renewal(version: str, n: int) -> dict[str, Any]:
    """The story's renewal invoice.paid, as the n-th subscriber's own (its invoice, line, subscription and event
    ids made distinct): a subscription first seen at a cycle invoice is taken at its word, as a renewal."""
    evt = story_event(version, "subscription_renewal/invoice.paid")
    text = json.dumps(evt)
    for old in ("in_1SubRenewStory0001", "il_1SubRenewStory0001", "sub_1ProStory0001", evt["id"]):
        text = text.replace(old, f"{old[:-2]}{n:02d}")
    return json.loads(text)  # type: ignore[no-any-return]  # json.loads answers Any: the event's dict


@pytest.fixture
async def shop(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with renewals coalesced into the hour's summary (the default)."""
    async with start_bot(dsn, fake_slack, SUBSCRIPTION_RENEWALS="coalesce") as running_bot:
        yield running_bot


async def hour_ends(shop: Bot) -> list[dict[str, Any]]:
    """The held pings come due (the hour is over) and are delivered; the messages Slack got."""
    before = len(shop.slack_api.posted())
    await shop.deps.pool.execute(DUE)
    await shop.drain(ignore_pace=True)
    posted = shop.slack_api.posted()[before:]
    for p in posted:
        assert_valid_message(p)
    return posted


@pytest.mark.parametrize("version", ["acacia", "basil", "clover"])
async def test_a_held_renewal_is_announced_as_a_renewal_not_a_new_sale(shop: Bot, version: str) -> None:
    """The first payment is a sale; the renewal held to the hour's end goes out as "🔄 Renewal", with no word of a
    new sale in its text or blocks (review: it went out as "💰 New Sale!")."""
    assert await post(shop, story_event(version, "subscription_first/invoice.paid")) == [
        "💰 New Sale: $19.00 — Pro plan"]
    assert await post(shop, story_event(version, "subscription_renewal/invoice.paid")) == []
    [released] = await hour_ends(shop)
    assert released["text"] == "🔄 Renewal: $19.00 — Pro plan"
    assert "New Sale" not in json.dumps(released["blocks"], ensure_ascii=False), released["blocks"]
    assert "🔄 Renewal" in json.dumps(released["blocks"], ensure_ascii=False)


async def test_the_hours_renewals_go_out_as_one_renewals_summary(shop: Bot) -> None:
    """Three renewals held in the hour: one summary, "🔄 3 renewals — $57.00", listing each, saying nothing of new
    sales."""
    for n in range(1, 4):
        assert await post(shop, renewal("basil", n)) == []
    [summary] = await hour_ends(shop)
    assert summary["text"].startswith("🔄 3 renewals ") and summary["text"].endswith(" — $57.00"), summary["text"]
    shown = json.dumps(summary["blocks"], ensure_ascii=False)
    assert "new sale" not in shown.lower() and "🔥" not in shown, shown
    assert shown.count("$19.00 · Pro plan") == 3, shown


async def test_new_sales_waiting_at_the_hours_end_share_the_summary_counted_apart(shop: Bot) -> None:
    """Two renewals held, then a new sale ($49.00) due at the same moment: one message (the hour's end sends one),
    whose headline, totals and list tell the new sale from the renewals."""
    for n in range(1, 3):
        assert await post(shop, renewal("basil", n)) == []
    resp = await shop.stripe(story_event("basil", "one_off/checkout.session.completed"))  # not delivered yet
    assert resp.status == 200, await resp.text()
    [summary] = await hour_ends(shop)
    text = summary["text"]
    assert text.startswith("🔥 1 new sale ") and text.endswith(" — $49.00 · 🔄 2 renewals — $38.00"), text
    shown = json.dumps(summary["blocks"], ensure_ascii=False)
    assert "🔥 1 new sale · 🔄 2 renewals" in shown and "*New sales:* $49.00\\n*Renewals:* $38.00" in shown, shown
    assert shown.count("🔄 $19.00 · Pro plan") == 2 and shown.count("• $49.00") == 1, shown


async def test_a_burst_looked_up_again_is_worded_as_when_it_was_claimed(shop: Bot) -> None:
    """A summary whose outcome is unknown is rendered again from its attempt record (bursts.view): the same count of
    renewals and the same totals as its claim."""
    for n in range(1, 3):
        assert await post(shop, renewal("clover", n)) == []
    await shop.stripe(story_event("clover", "one_off/checkout.session.completed"))
    await shop.deps.pool.execute(DUE)
    claimed = await bursts.claim(shop.deps.pool, "sales", kind="sale", listed=BURST_LISTED)
    assert claimed is not None
    seen = await bursts.view(shop.deps.pool, claimed.ref, listed=BURST_LISTED)
    assert seen is not None
    assert (claimed.count, claimed.renewals, claimed.sale_totals, claimed.renewal_totals) == (3, 2, {"USD": 4900},
                                                                                              {"USD": 3800})
    assert (seen.renewals, seen.sale_totals, seen.renewal_totals, [s.renewal for s in seen.listed]) == (
        2, {"USD": 4900}, {"USD": 3800}, [s.renewal for s in claimed.listed])
