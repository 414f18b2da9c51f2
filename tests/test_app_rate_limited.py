"""Slack's `rate_limited` in an HTTP 200 ("Application has posted too many messages") is the app's posting limit across
the workspace (https://docs.slack.dev/apis/web-api/rate-limits: chat.postMessage allows about one message per second
per channel "while also maintaining a workspace-wide limit"). It paused only the channel that got it, 1 s every time:
every other channel went on posting into the limit, and a limit that lasted was hit once a second. Every channel now
waits, 1 s at first and twice as long each time it comes again (at most 30 s), until a post goes through."""

from __future__ import annotations

from bot.delivery.outcomes import APP_LIMIT_MAX, AppLimit
from queries import outbox as q
from tests.conftest import Bot
from tests.test_delivery import send_sales


async def paused_for(bot: Bot) -> float:
    """Seconds until any channel may be posted to again (the workspace's pause)."""
    wait = await bot.deps.pool.fetchval(
        "SELECT extract(epoch FROM next_post_at - now())::float8 FROM channel_pace WHERE channel = '*'")
    return float(wait or 0.0)


def calls(bot: Bot) -> int:
    return sum(1 for c in bot.slack_api.calls if c.method == "chat.postMessage")


async def skip_pauses(bot: Bot) -> None:
    await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
    await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")


async def test_rate_limited_pauses_every_channel_for_a_growing_wait_until_a_post_goes_through(bot: Bot) -> None:
    bot.slack_api.fail_next(3, error="rate_limited", method="chat.postMessage")
    await send_sales(bot, 1)
    await bot.deps.worker.drain()
    assert calls(bot) == 1
    assert 0.5 < await paused_for(bot) <= 1.05
    # An alert queued meanwhile, for another channel, waits too: the limit is the app's, not the sales channel's.
    await q.enqueue(bot.deps.pool, dedupe_key="a-1", channel="alerts", kind="alert", payload={"text": "ALERT one"})
    await bot.deps.worker.drain()
    assert calls(bot) == 1, "the alerts channel posted into the app's rate limit"
    # Both channels try again after the pause, and are both refused: the pause doubles each time (2 s, then 4 s).
    await skip_pauses(bot)
    await bot.deps.worker.drain()
    assert calls(bot) == 3
    assert 3.5 < await paused_for(bot) <= 4.05
    await skip_pauses(bot)
    await bot.drain()
    assert [p["text"] for p in bot.slack_api.posted()].count("ALERT one") == 1 and len(bot.slack_api.posted()) == 2
    # Posts went through: the next refusal pauses 1 s again.
    bot.slack_api.fail_next(1, error="rate_limited", method="chat.postMessage")
    await send_sales(bot, 1, start=1)
    await skip_pauses(bot)
    await bot.deps.worker.drain()
    assert 0.5 < await paused_for(bot) <= 1.05


async def test_a_429_still_holds_only_its_channel(bot: Bot) -> None:
    """An HTTP 429 (`ratelimited`, with Retry-After) keeps its per-channel wait: no workspace-wide pause."""
    bot.slack_api.fail_next(1, status=429, retry_after=1)
    await send_sales(bot, 1)
    await bot.deps.worker.drain()
    assert await paused_for(bot) == 0.0


def test_the_pause_doubles_up_to_thirty_seconds() -> None:
    limit = AppLimit()
    assert [limit.pause().total_seconds() for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert APP_LIMIT_MAX.total_seconds() == 30
