"""A message in flight when the bot shuts down (SIGTERM during a deploy) is delivered once: the call under way is let
finish and its outcome recorded before the worker stops. With incoming webhooks, which cannot read the channel back,
a post cut short would stay pending and go again at the next start."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from bot.delivery import outcomes
from bot.delivery.lanes import FinishingSender
from bot.delivery.senders import ConsoleSender
from queries import outbox as q
from tests.conftest import start_bot
from tests.fakes import FakeSlack

HELD = 1.5  # seconds the fake Slack holds the post's answer: the bot shuts down meanwhile


def webhooks(slack: FakeSlack) -> dict[str, Any]:
    """An install with incoming webhooks only: no bot token."""
    hooks = slack.url.replace("/api/", "/hooks/")
    return {"SLACK_BOT_TOKEN": None, "SLACK_SIGNING_SECRET": None, "SLACK_SALES_WEBHOOK_URL": hooks + "sales",
            "SLACK_ALERT_WEBHOOK_URL": hooks + "alerts"}


def received(slack: FakeSlack) -> list[str]:
    """What the alerts webhook took."""
    return [c.args["text"] for c in slack.calls if c.method == "hook:alerts" and c.answered == 200]


async def until(check: Callable[[], bool], *, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "the fake Slack got no call in time"
        await asyncio.sleep(0.02)


async def status(conn: asyncpg.Connection, outbox_id: int | None) -> tuple[str, bool]:
    """The message's status, and whether an attempt of it is still in doubt."""
    row = await conn.fetchrow("SELECT status, EXISTS (SELECT FROM delivery_attempts WHERE outbox_id = $1) AS doubt"
                              " FROM outbox WHERE id = $1", outbox_id)
    assert row is not None
    return row["status"], row["doubt"]


async def test_webhook_post_in_flight_at_shutdown_is_delivered_once(dsn: str, fake_slack: FakeSlack,
                                                                    conn: asyncpg.Connection) -> None:
    fake_slack.fail_next(1, accept=True, delay=HELD, method="hook:alerts")  # taken, answered late
    async with start_bot(dsn, fake_slack, background_worker=True, **webhooks(fake_slack)) as bot:
        first = await q.enqueue(bot.deps.pool, dedupe_key="t-first", channel="alerts", kind="alert",
                                payload={"text": "first alert"})
        await until(lambda: bool(received(fake_slack)))  # Slack has it; its answer is on its way
        second = await q.enqueue(bot.deps.pool, dedupe_key="t-second", channel="alerts", kind="alert",
                                 payload={"text": "second alert"})
    # Shut down while the post was held: it finished and was recorded; nothing new went out meanwhile.
    assert received(fake_slack) == ["first alert"]
    assert await status(conn, first) == ("delivered", False)
    assert await status(conn, second) == ("pending", False)

    async with start_bot(dsn, fake_slack, **webhooks(fake_slack)) as bot:  # the next start
        await bot.drain(ignore_pace=True)
    assert received(fake_slack) == ["first alert", "second alert"]  # each once


async def test_web_api_post_in_flight_at_shutdown_is_recorded(dsn: str, fake_slack: FakeSlack,
                                                              conn: asyncpg.Connection) -> None:
    """The same with the bot token: the post is settled with its ts at once, not left for a look-up."""
    fake_slack.fail_next(1, accept=True, delay=HELD, method="chat.postMessage")
    async with start_bot(dsn, fake_slack, background_worker=True) as bot:
        sent = await q.enqueue(bot.deps.pool, dedupe_key="t-alert", channel="alerts", kind="alert",
                               payload={"text": "an alert"})
        await until(lambda: bool(fake_slack.messages))
    assert await status(conn, sent) == ("delivered", False)
    assert await conn.fetchval("SELECT slack_ts FROM outbox WHERE id = $1", sent) == fake_slack.messages[0]["ts"]

    async with start_bot(dsn, fake_slack) as bot:
        await bot.drain(ignore_pace=True)
    assert [m["text"] for m in fake_slack.messages] == ["an alert"]
    assert len(fake_slack.posted()) == 1


async def test_no_call_starts_once_shutdown_has_begun() -> None:
    out = io.StringIO()
    sender = FinishingSender(ConsoleSender(stream=out))
    sender.stopping = True
    with pytest.raises(asyncio.CancelledError):
        await sender.post("alerts", {"text": "too late"})
    assert out.getvalue() == ""


async def test_stop_landing_while_the_answer_is_recorded_posts_once(dsn: str, fake_slack: FakeSlack,
                                                                    conn: asyncpg.Connection,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM arriving just after Slack answered, while the answer is being recorded: the recording is let finish
    too, or the pass rolls back and an incoming webhook's post is sent again at the next start."""
    original = outcomes.delivered
    stopped: list[bool] = []

    # The pass records Slack's "ok"; SIGTERM's cancel arrives meanwhile.
    async def delivered(*args: Any, **kwargs: Any) -> Any:
        if not stopped:
            stopped.append(True)
            for task in asyncio.all_tasks():
                if task.get_name() == "delivery":  # what running()'s shutdown does to the worker
                    task.cancel()
            await asyncio.sleep(0.05)  # stands for the recording's round trips to PostgreSQL
        return await original(*args, **kwargs)

    monkeypatch.setattr(outcomes, "delivered", delivered)
    async with start_bot(dsn, fake_slack, background_worker=True, **webhooks(fake_slack)) as bot:
        first = await q.enqueue(bot.deps.pool, dedupe_key="t-first", channel="alerts", kind="alert",
                                payload={"text": "first alert"})
        await until(lambda: bool(stopped))
        await asyncio.sleep(0.3)
    monkeypatch.setattr(outcomes, "delivered", original)
    assert received(fake_slack) == ["first alert"]
    recorded = await status(conn, first)

    async with start_bot(dsn, fake_slack, **webhooks(fake_slack)) as bot:  # the next start
        await bot.drain(ignore_pace=True)
    assert received(fake_slack) == ["first alert"], (recorded, received(fake_slack))  # posted once
