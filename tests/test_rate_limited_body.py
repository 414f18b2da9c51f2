"""Slack's chat.postMessage documents `rate_limited` ("Application has posted too many messages") as an error
answered in the body (HTTP 200, ok:false), distinct from the HTTP 429 `ratelimited`. It says nothing landed and
the message should be sent later: a paid order's ping must not be given up over it."""

from __future__ import annotations

from tests.conftest import Bot
from tests.test_delivery import send_sales


async def test_rate_limited_error_in_body_does_not_lose_the_sale_ping(bot: Bot) -> None:
    bot.slack_api.fail_next(3, error="rate_limited", method="chat.postMessage")
    await send_sales(bot, 1)
    for _ in range(4):
        await bot.deps.worker.drain()
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")  # skip the backoff waits
        await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
    row = await bot.deps.pool.fetchrow("SELECT status, last_error FROM outbox")
    assert row["status"] != "failed", f"sale ping given up over Slack's rate_limited: {dict(row)}"
    await bot.drain(ignore_pace=True)
    assert len(bot.slack_api.posted()) == 1
