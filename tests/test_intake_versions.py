"""One payment in every API version and every order of arrival: one order, one ping naming product and customer.

Signed webhooks through the real route (tests/fixtures/stripe/versions, see its PROVENANCE.md). The delivery
worker runs after every event, as a fast one would: a sale that names everything pings at once, one that waits
for its checkout session or invoice (SALE_SETTLE_SECONDS) stays pending until the deadline, which the test then
brings forward.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack

VERSIONS_DIR = Path(__file__).parent / "fixtures" / "stripe" / "versions"
ONE_OFF = ("checkout.session.completed", "payment_intent.succeeded", "charge.succeeded")
SUBSCRIPTION = ("invoice.paid", "payment_intent.succeeded", "charge.succeeded")
BASIL_LINK = ("invoice_payment.paid",)
# (story, version) → the events of one payment, what the ping must name, and the money.
STORIES: dict[tuple[str, str], tuple[tuple[str, ...], str, str, int]] = {
    **{("one_off", v): (ONE_OFF, "Async Python course", "ada***", 4900)
       for v in ("acacia", "basil", "clover", "dahlia", "endive")},
    ("subscription_first", "acacia"): (("checkout.session.completed", *SUBSCRIPTION), "Pro plan", "gra***", 1900),
    **{("subscription_first", v): (("checkout.session.completed", *SUBSCRIPTION, *BASIL_LINK), "Pro plan", "gra***",
                                   1900) for v in ("basil", "clover", "dahlia", "endive")},
    ("subscription_renewal", "acacia"): (SUBSCRIPTION, "Pro plan", "gra***", 1900),
    **{("subscription_renewal", v): ((*SUBSCRIPTION, *BASIL_LINK), "Pro plan", "gra***", 1900)
       for v in ("basil", "clover", "dahlia", "endive")},
}
RESET = """
TRUNCATE orders, payment_refs, payment_failures, disputes, checkout_sessions, webhook_logs, outbox,
         delivery_attempts, delivery_errors, order_rollups, channel_pace CASCADE
"""


def story_event(version: str, story: str, event_type: str) -> dict[str, Any]:
    """A versioned fixture's webhook body."""
    raw = json.loads((VERSIONS_DIR / version / story / f"{event_type}.json").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


@pytest.fixture
async def settling_bot(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with a settle window far longer than the test: only the test brings deadlines forward."""
    async with start_bot(dsn, fake_slack, SALE_SETTLE_SECONDS="600") as running_bot:
        yield running_bot


async def arrive(bot: Bot, events: list[dict[str, Any]]) -> None:
    """Post each event signed, running the worker after each; then pass every settle deadline and drain."""
    for evt in events:
        resp = await bot.stripe(evt)
        assert resp.status == 200, await resp.text()
        await bot.drain(until_idle=False, ignore_pace=True)  # one pass: what is due goes, the settling stays
    await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    await bot.drain(ignore_pace=True)


async def reset(bot: Bot) -> None:
    """Forget every payment and message: the next permutation starts from an empty store."""
    await bot.deps.pool.execute(RESET)
    bot.slack_api.calls.clear()


@pytest.mark.parametrize(("story", "version"), sorted(STORIES))
async def test_every_arrival_order_makes_one_order_and_one_named_ping(settling_bot: Bot, story: str,
                                                                      version: str) -> None:
    """Each permutation of a payment's events: one order, revenue once, one ping with product and customer."""
    types, product, customer, amount = STORIES[story, version]
    events = {t: story_event(version, story, t) for t in types}
    bot, seen = settling_bot, 0
    for order in itertools.permutations(types):
        await reset(bot)
        await arrive(bot, [events[t] for t in order])
        pool, where = bot.deps.pool, f"{version} {story} {order}"
        assert await pool.fetchval("SELECT count(*) FROM orders") == 1, where
        assert await pool.fetchval("SELECT sum(amount_total) FROM orders WHERE payment_status = 'completed'"
                                   ) == amount, where
        assert await pool.fetchval("SELECT sum(revenue) FROM order_rollups") == amount, where
        posts = bot.slack_api.posted()
        assert len(posts) == 1, (where, [p["text"] for p in posts])
        shown = json.dumps(posts[0], ensure_ascii=False)
        assert "New Sale" in posts[0]["text"] and product in shown and customer in shown, (where, shown)
        assert_valid_message(posts[0])
        seen += 1
    assert seen == len(list(itertools.permutations(types)))


@pytest.mark.parametrize("version", ["acacia", "basil", "clover", "dahlia", "endive"])
async def test_a_free_trial_is_no_sale_in_any_arrival_order(settling_bot: Bot, version: str) -> None:
    """A $0 invoice and a no-payment checkout, in any order: no completed order and no sale ping."""
    types = ("checkout.session.completed", "invoice.paid", "customer.subscription.created")
    for order in itertools.permutations(types):
        await reset(settling_bot)
        await arrive(settling_bot, [story_event(version, "trial", t) for t in order])
        assert await settling_bot.deps.pool.fetchval(
            "SELECT count(*) FROM orders WHERE payment_status = 'completed'") == 0
        assert settling_bot.slack_api.posted() == []
