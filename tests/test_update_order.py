"""Updates to one message must land in the order they were queued: the alert's message is replaced in place, and
its last version must be its newest state (README: "Updates ... never go before the message they target";
alerts are "updated in place")."""

from __future__ import annotations

from queries import outbox as q
from tests.conftest import Bot


async def _pass(bot: Bot) -> None:
    await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
    await bot.deps.worker.drain()


def _updates(bot: Bot) -> list[str]:
    return [c.args.get("text") for c in bot.slack_api.calls if c.method == "chat.update" and c.answered == 200]


async def test_a_retried_update_does_not_overwrite_a_newer_one(bot: Bot) -> None:
    pool = bot.deps.pool
    fired = await q.enqueue(pool, dedupe_key="t-fire", channel="alerts", kind="alert",
                            payload={"text": "ALERT firing"})
    await bot.drain(ignore_pace=True)
    assert await pool.fetchval("SELECT slack_ts FROM outbox WHERE id = $1", fired)

    bot.slack_api.fail_next(1, status=500, method="chat.update")  # Slack hiccups on the first edit
    await q.enqueue(pool, dedupe_key="t-ack", channel="alerts", kind="alert", payload={"text": "ALERT acknowledged"},
                    op="update", target_id=fired)
    await _pass(bot)
    await q.enqueue(pool, dedupe_key="t-resolve", channel="alerts", kind="alert", payload={"text": "ALERT resolved"},
                    op="update", target_id=fired)
    await _pass(bot)  # the newer edit is due, the retried one waits for its backoff
    await pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")  # the backoff is over
    await _pass(bot)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0
    shown = _updates(bot)[-1]
    assert shown == "ALERT resolved", f"Slack shows a stale version of the alert: {shown!r} (edits: {_updates(bot)})"
    assert [m["text"] for m in bot.slack_api.messages] == ["ALERT resolved"]  # what the channel shows


async def test_a_retried_thread_reply_keeps_its_place_in_the_thread(bot: Bot) -> None:
    """Replies to one message land in the order they were queued: one put back by a retry is not overtaken."""
    pool = bot.deps.pool
    fired = await q.enqueue(pool, dedupe_key="t-fire", channel="alerts", kind="alert",
                            payload={"text": "ALERT firing"})
    await bot.drain(ignore_pace=True)
    parent = await pool.fetchval("SELECT slack_ts FROM outbox WHERE id = $1", fired)

    bot.slack_api.fail_next(1, status=500, method="chat.postMessage")  # Slack hiccups on the first reply
    await q.enqueue(pool, dedupe_key="t-r1", channel="alerts", kind="alert", payload={"text": "first reply"},
                    op="reply", target_id=fired)
    await _pass(bot)
    await q.enqueue(pool, dedupe_key="t-r2", channel="alerts", kind="alert", payload={"text": "second reply"},
                    op="reply", target_id=fired)
    await _pass(bot)  # the second is due, the retried first waits for its backoff
    await pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")  # the backoff is over
    await bot.drain(ignore_pace=True)
    thread = [m["text"] for m in bot.slack_api.messages if m["thread_ts"] == parent]
    assert thread == ["first reply", "second reply"], f"the thread shows its replies out of order: {thread}"
