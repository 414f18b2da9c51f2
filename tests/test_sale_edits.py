"""A sale ping that went out before its order was named (its settle window passed: the checkout session or invoice
came late, as a Stripe retry does) is edited in place once the order is: the owner's message ends up naming the
product and customer, without a second ping. A ping a worker may be posting while the intake refreshes it is
edited after it too; one nothing visible changed for is left alone (queries/intake_pings.py `REFRESH_PINGS`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bot.intake.batch import ingest_batch
from bot.subscriptions.renewals import Renewals
from queries import health
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, crash_after_slack_accepts, start_bot
from tests.fakes import FakeSlack
from tests.test_failure_attempts import NOW, TZ, _subs
from tests.test_intake_versions import story_event
from tests.test_replicas import eventually

VERSIONS = ["acacia", "basil", "clover", "dahlia", "endive"]
PRODUCT, CUSTOMER = "Async Python course", "ada***"  # what the one-off story's checkout session names


@pytest.fixture
async def settling_bot(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    async with start_bot(dsn, fake_slack, SALE_SETTLE_SECONDS="600") as running_bot:
        yield running_bot


async def _deliver(bot: Bot, event: dict[str, Any], *, settle_passes: bool = False) -> None:
    assert (await bot.stripe(event)).status == 200
    if settle_passes:
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    await bot.drain(ignore_pace=True)


def _shown(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_ping_posted_before_its_checkout_session_is_edited_once_it_comes(settling_bot: Bot,
                                                                                 version: str) -> None:
    bot = settling_bot
    await _deliver(bot, story_event(version, "one_off", "payment_intent.succeeded"), settle_passes=True)
    [first] = bot.slack_api.posted()
    assert PRODUCT not in _shown(first), first  # out at its deadline, unnamed
    for _ in range(2):  # Stripe's redelivery of the session changes nothing more
        await _deliver(bot, story_event(version, "one_off", "checkout.session.completed"))
        await _deliver(bot, story_event(version, "one_off", "charge.succeeded"))
    assert len(bot.slack_api.posted()) == 1
    [edit] = bot.slack_api.posted("chat.update")
    [message] = bot.slack_api.messages
    assert (edit["ts"], edit["channel"]) == (message["ts"], message["channel_id"]), (edit, message)
    assert "New Sale" in edit["text"] and PRODUCT in _shown(edit) and CUSTOMER in _shown(edit), edit
    assert_valid_message(edit)
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_ping_that_named_everything_is_not_edited_by_the_payments_later_events(settling_bot: Bot,
                                                                                      version: str) -> None:
    bot = settling_bot
    for event_type in ("checkout.session.completed", "payment_intent.succeeded", "charge.succeeded"):
        await _deliver(bot, story_event(version, "one_off", event_type))
    [ping] = bot.slack_api.posted()
    assert PRODUCT in _shown(ping) and CUSTOMER in _shown(ping), ping
    assert bot.slack_api.posted("chat.update") == []
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE op = 'update'") == 0


async def _sale_pings(db: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(
        "SELECT id, op, target_id, payload->'sale'->>'product' AS product, status FROM outbox"
        " WHERE kind = 'sale' ORDER BY id")]


async def test_a_ping_a_worker_is_sending_is_edited_after_it(db: asyncpg.Connection) -> None:
    """The worker locks no outbox row: once it has read a due ping, the refreshed fields may miss the post."""
    intent = story_event("basil", "one_off", "payment_intent.succeeded")
    await ingest_batch(db, _subs([intent]), tz=TZ, now=NOW, settle=dt.timedelta(0))
    sending = await db.fetchval("INSERT INTO delivery_attempts (outbox_id, channel) SELECT id, channel FROM outbox"
                                " WHERE kind = 'sale' RETURNING outbox_id")
    await ingest_batch(db, _subs([story_event("basil", "one_off", "checkout.session.completed")]), tz=TZ, now=NOW)
    pings = await _sale_pings(db)
    assert [(p["op"], p["target_id"], p["product"]) for p in pings] == [
        ("post", None, PRODUCT), ("update", sending, PRODUCT)], pings


async def test_a_ping_still_held_is_refreshed_without_an_edit(db: asyncpg.Connection) -> None:
    intent = story_event("basil", "one_off", "payment_intent.succeeded")
    await ingest_batch(db, _subs([intent]), tz=TZ, now=NOW, settle=dt.timedelta(minutes=10))
    await ingest_batch(db, _subs([story_event("basil", "one_off", "checkout.session.completed")]), tz=TZ, now=NOW)
    assert [(p["op"], p["product"]) for p in await _sale_pings(db)] == [("post", PRODUCT)]


async def test_a_ping_summarised_in_a_burst_gets_no_edit_of_its_own(settling_bot: Bot) -> None:
    """Its sale is one line of a summary, which is not edited: no edit is queued, and Slack is not called."""
    bot = settling_bot
    await bot.deps.pool.execute("UPDATE outbox SET status = 'delivered'")  # nothing else waiting
    await bot.stripe(story_event("basil", "one_off", "payment_intent.succeeded"))
    await bot.deps.pool.execute("UPDATE outbox SET status = 'coalesced', delivered_at = now() WHERE kind = 'sale'")
    await _deliver(bot, story_event("basil", "one_off", "checkout.session.completed"))
    assert [c.method for c in bot.slack_api.calls if c.method.startswith("chat.")] == []
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE op = 'update'") == 0


async def test_a_later_time_alone_is_not_worth_an_edit(settling_bot: Bot) -> None:
    """An event of the same payment stamped later moves the order's time, which the ping shows to the minute."""
    bot = settling_bot
    await _deliver(bot, story_event("basil", "one_off", "checkout.session.completed"))
    intent = story_event("basil", "one_off", "payment_intent.succeeded")
    intent["created"] = intent["data"]["object"]["created"] = intent["created"] + 60
    await _deliver(bot, intent)
    assert await bot.deps.pool.fetchval("SELECT created_at FROM orders") == dt.datetime.fromtimestamp(
        intent["created"], dt.UTC)  # the order's time did move
    assert len(bot.slack_api.posted()) == 1 and bot.slack_api.posted("chat.update") == []


async def test_a_ping_whose_attempt_may_have_landed_is_edited_though_its_retry_waits(db: asyncpg.Connection) -> None:
    """A timed-out post may be in Slack: its retry looks it up first and does not post again, so only an edit could
    show the refreshed fields."""
    await ingest_batch(db, _subs([story_event("basil", "one_off", "payment_intent.succeeded")]), tz=TZ, now=NOW,
                       settle=dt.timedelta(0))
    tried = await db.fetchval(
        "WITH t AS (UPDATE outbox SET attempts = 1, available_at = now() + interval '1 minute' WHERE kind = 'sale'"
        " RETURNING id, channel) INSERT INTO delivery_attempts (outbox_id, channel) SELECT id, channel FROM t"
        " RETURNING outbox_id")
    await ingest_batch(db, _subs([story_event("basil", "one_off", "checkout.session.completed")]), tz=TZ, now=NOW)
    assert [(p["op"], p["target_id"], p["product"]) for p in await _sale_pings(db)] == [
        ("post", None, PRODUCT), ("update", tried, PRODUCT)]


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_renewal_ping_left_to_the_report_goes_with_its_edit(db: asyncpg.Connection, version: str) -> None:
    """A renewal's PaymentIntent pings at once (settle 0); its invoice then names the plan, which would edit that
    ping, and says it is a renewal, which report mode never pings: the ping and its edit both go, and the invoice is
    applied (a dangling edit would refuse it)."""
    def event(event_type: str) -> dict[str, Any]:
        return story_event(version, "subscription_renewal", event_type)

    await ingest_batch(db, _subs([event("payment_intent.succeeded")]), tz=TZ, now=NOW, settle=dt.timedelta(0),
                       renewals=Renewals.REPORT)
    link = [event("invoice_payment.paid")] if version != "acacia" else []  # from basil on, what ties the two
    await ingest_batch(db, _subs([event("invoice.paid"), *link]), tz=TZ, now=NOW, renewals=Renewals.REPORT)
    assert await db.fetchval("SELECT count(*) FROM webhook_logs WHERE status = 'error'") == 0
    assert await _sale_pings(db) == []
    assert await db.fetchval("SELECT sum(amount_total) FROM orders WHERE payment_status = 'completed'") == 1900


@pytest.mark.parametrize("version", VERSIONS)
async def test_an_edit_showing_what_its_ping_was_posted_with_costs_no_call(settling_bot: Bot, version: str) -> None:
    """Due, but not read by a worker yet, when its session came: the intake cannot tell, so it queues an edit too;
    the ping then goes out named, and the edit, showing the same, is settled without using the channel's slot."""
    bot = settling_bot
    assert (await bot.stripe(story_event(version, "one_off", "payment_intent.succeeded"))).status == 200
    await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    assert (await bot.stripe(story_event(version, "one_off", "checkout.session.completed"))).status == 200
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE op = 'update'") == 1
    await bot.drain(ignore_pace=True)
    [ping] = bot.slack_api.posted()
    assert PRODUCT in _shown(ping) and CUSTOMER in _shown(ping), ping
    assert [c.method for c in bot.slack_api.calls if c.method.startswith("chat.")] == ["chat.postMessage"]
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0


async def test_a_ping_posted_with_what_the_worker_read_before_the_refresh_is_edited(settling_bot: Bot) -> None:
    """The worker read the unnamed ping and is posting it (Slack's answer is slow) when the session comes: the
    post shows the old fields, so the edit queued meanwhile is sent, not settled as if the post had shown it."""
    bot = settling_bot
    assert (await bot.stripe(story_event("basil", "one_off", "payment_intent.succeeded"))).status == 200
    await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    bot.slack_api.fail_next(1, accept=True, delay=2, method="chat.postMessage")
    posting = asyncio.create_task(bot.drain(ignore_pace=True))
    async def in_channel() -> bool:  # the unnamed ping is in the channel; its answer is on its way
        return bool(bot.slack_api.messages)

    await eventually(in_channel, within=5)
    assert (await bot.stripe(story_event("basil", "one_off", "checkout.session.completed"))).status == 200
    await posting
    await bot.drain(ignore_pace=True)
    [first] = bot.slack_api.posted()
    [edit] = bot.slack_api.posted("chat.update")
    assert PRODUCT not in _shown(first) and PRODUCT in _shown(edit), (first, edit)


async def test_a_ping_found_in_slack_after_a_crash_is_still_edited(settling_bot: Bot) -> None:
    """The worker died after Slack took the unnamed ping; its session came meanwhile. The retry finds the old post
    in Slack (not what the row says now), so the edit queued for it is sent, not settled as shown."""
    bot = settling_bot
    await _deliver_due(bot, story_event("basil", "one_off", "payment_intent.succeeded"), drain=False)
    await crash_after_slack_accepts(bot, bot.slack_api, messages=1)
    assert await bot.deps.pool.fetchval("SELECT status FROM outbox") == "pending"  # in Slack, its answer lost
    assert (await bot.stripe(story_event("basil", "one_off", "checkout.session.completed"))).status == 200
    await bot.drain(ignore_pace=True)
    [first] = bot.slack_api.posted()  # the post Slack took before the crash: posted once, without the product
    assert len(bot.slack_api.messages) == 1 and PRODUCT not in _shown(first)
    [edit] = bot.slack_api.posted("chat.update")
    assert PRODUCT in _shown(edit) and edit["ts"] == bot.slack_api.messages[0]["ts"], edit
    assert PRODUCT in str(bot.slack_api.messages[0]["text"])  # what the channel shows now: the edit


async def test_of_two_edits_queued_before_the_post_the_older_never_goes_over_it(settling_bot: Bot) -> None:
    """Two later events each named more while the ping was due: the ping goes out with the newest fields, and the
    older edit is not sent over it (an edit would take the message back)."""
    bot = settling_bot
    await _deliver_due(bot, story_event("basil", "one_off", "payment_intent.succeeded"), drain=False)
    session = story_event("basil", "one_off", "checkout.session.completed")
    named = {k: v for k, v in session["data"]["object"].items() if k != "metadata"}  # the product comes second
    assert (await bot.stripe({**session, "id": "evt_first", "data": {"object": named}})).status == 200
    assert (await bot.stripe({**session, "id": "evt_second"})).status == 200
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE op = 'update'") == 2
    await bot.drain(ignore_pace=True)
    [ping] = bot.slack_api.posted()
    assert PRODUCT in _shown(ping) and CUSTOMER in _shown(ping), ping
    assert [c.method for c in bot.slack_api.calls if c.method.startswith("chat.")] == ["chat.postMessage"]


async def test_an_edit_of_a_ping_an_incoming_webhook_posted_is_not_a_second_ping(settling_bot: Bot) -> None:
    """Posted by an incoming webhook (no ts to edit) before the bot token came: the edit is settled unsent."""
    bot = settling_bot
    assert (await bot.stripe(story_event("basil", "one_off", "payment_intent.succeeded"))).status == 200
    await bot.deps.pool.execute("UPDATE outbox SET status = 'delivered', attempts = 1, delivered_at = now()"
                                " WHERE kind = 'sale'")
    await _deliver(bot, story_event("basil", "one_off", "checkout.session.completed"))
    assert [c.method for c in bot.slack_api.calls if c.method.startswith("chat.")] == []
    assert await bot.deps.pool.fetchval("SELECT status FROM outbox WHERE op = 'update'") == "delivered"


async def test_an_edit_waiting_for_its_held_ping_is_not_delivery_stuck(settling_bot: Bot) -> None:
    """A renewal's ping held to the hour's end after an edit was queued for it: the edit waits by design, and
    /health does not call delivery stuck however long it waits (its ping counts, once due)."""
    bot = settling_bot
    await _deliver_due(bot, story_event("basil", "one_off", "payment_intent.succeeded"), drain=False)
    assert (await bot.stripe(story_event("basil", "one_off", "checkout.session.completed"))).status == 200
    await bot.deps.pool.execute(
        "UPDATE outbox SET available_at = now() + interval '1 hour' WHERE op = 'post';"
        " UPDATE outbox SET created_at = now() - interval '30 minutes', available_at = now() - interval '30 minutes'"
        " WHERE op = 'update'")
    backlog = await health.outbox_backlog(bot.deps.pool, now=dt.datetime.now(dt.UTC))
    assert backlog.pending == 2 and backlog.oldest_due is None, backlog  # the ping is held, its edit behind it
    assert await health.stuck_channels(bot.deps.pool, now=dt.datetime.now(dt.UTC),
                                       since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)) == []


async def _deliver_due(bot: Bot, event: dict[str, Any], *, drain: bool = True) -> None:
    """Deliver an event whose ping the settle window would hold: made due at once, as at its deadline."""
    assert (await bot.stripe(event)).status == 200
    await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    if drain:
        await bot.drain(ignore_pace=True, until_idle=False)


async def test_an_amount_that_goes_back_and_forth_ends_in_slack_as_it_ends_in_the_store(settling_bot: Bot) -> None:
    """A → B → A → B: every change after the post is an edit of its own, and the last one says B."""
    bot = settling_bot
    await _deliver(bot, story_event("basil", "one_off", "checkout.session.completed"))
    intent = story_event("basil", "one_off", "payment_intent.succeeded")
    intent["created"] += 3  # after the session: an older event's amount never replaces a newer one's (takes_amount)
    for n, amount in enumerate((5000, 4900, 5000)):
        intent["id"] = f"evt_amount_{n}"  # the same time each: what the ping shows is all that changes
        intent["data"]["object"].update(amount=amount, amount_received=amount)
        await _deliver(bot, intent)
    assert await bot.deps.pool.fetchval("SELECT amount_total FROM orders") == 5000
    edits = bot.slack_api.posted("chat.update")
    assert [e["text"].split(" — ")[0] for e in edits] == ["💰 New Sale: $50.00", "💰 New Sale: $49.00",
                                                          "💰 New Sale: $50.00"], [e["text"] for e in edits]
