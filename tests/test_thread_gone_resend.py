"""A reply whose thread is gone is posted as a message of its own (bot/delivery/threads.py). When that post lands
but its answer is unreadable (an HTML 503: "may have landed, look up before a resend"), the next pass looked for it in
the gone thread (conversations.replies → thread_not_found), could not tell, and posted it again: the channel showed it
twice. It is looked for in the channel itself, the one it was posted to (not the thread's after a move)."""

from __future__ import annotations

from aiohttp import web

from queries import outbox as q
from tests.conftest import start_bot
from tests.fakes import Call, FakeSlack


class GoneThreadSlack(FakeSlack):
    gone: set[str]
    took_it_bad: int = 0

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        if method in ("chat.postMessage", "conversations.replies") and args.get(
                "thread_ts" if method == "chat.postMessage" else "ts") in self.gone:
            self.calls.append(Call(method, {**args, "_ok": False}, 200))
            return web.json_response({"ok": False, "error": "thread_not_found"})
        if method == "chat.postMessage" and self.took_it_bad > 0:
            self.took_it_bad -= 1
            self._answer(method, args)  # in the channel
            self.calls.append(Call(method, {**args, "_ok": False}, 503))
            return web.Response(status=503, body=b"<html>503</html>", content_type="application/json")
        return await super()._api(request)


async def test_a_reply_posted_on_its_own_after_its_thread_went_is_not_posted_twice(dsn: str) -> None:
    slack = await GoneThreadSlack().start()
    slack.gone = set()
    try:
        async with start_bot(dsn, slack) as bot:
            bot.deps.worker.backoff_scale = 0.0
            pool = bot.deps.pool
            fired = await q.enqueue(pool, dedupe_key="t-fire", channel="alerts", kind="alert",
                                    payload={"text": "ALERT firing"})
            await bot.drain(ignore_pace=True)
            parent = await pool.fetchval("SELECT slack_ts FROM outbox WHERE id = $1", fired)
            assert parent
            slack.gone.add(parent)  # someone deleted the alert's message
            slack.messages[:] = [m for m in slack.messages if m["ts"] != parent]
            slack.took_it_bad = 1  # the message-of-its-own lands, its answer is an HTML 503
            await q.enqueue(pool, dedupe_key="t-reply", channel="alerts", kind="alert",
                            payload={"text": "ALERT resolved reply"}, op="reply", target_id=fired)
            for _ in range(4):
                await pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
                await bot.drain(ignore_pace=True)
            shown = [m["text"] for m in slack.messages]
            assert shown.count("ALERT resolved reply") == 1, f"the channel shows: {shown}"
    finally:
        await slack.stop()


async def test_after_the_channel_moved_a_reply_posted_on_its_own_is_looked_up_where_it_went(dsn: str) -> None:
    """The alert went to #system-alerts; the alerts channel then moved in Settings and the alert's message was
    deleted. Its reply, posted on its own, goes to the new channel: an unreadable answer is looked up there (the
    attempt record follows the post), not in the old channel, and the reply is not posted twice."""
    slack = await GoneThreadSlack().start()
    slack.gone = set()
    try:
        async with start_bot(dsn, slack) as bot:
            bot.deps.worker.backoff_scale = 0.0
            pool = bot.deps.pool
            fired = await q.enqueue(pool, dedupe_key="m-fire", channel="alerts", kind="alert",
                                    payload={"text": "ALERT firing"})
            await bot.drain(ignore_pace=True)
            parent = await pool.fetchval("SELECT slack_ts FROM outbox WHERE id = $1", fired)
            assert parent and slack.messages[0]["channel_id"] == "C0ALERTS"
            slack.add_channel("C0NEWALERTS", "new-alerts", member=True)
            channels = {"sales": "#sales-notifications", "alerts": "C0NEWALERTS", "reports": "#daily-reports"}
            bot.deps.sender.retarget(channels)
            assert bot.deps.channels is not None and bot.deps.channels.reconfigure(channels)
            await bot.deps.channels.start()
            slack.gone.add(parent)
            slack.messages[:] = [m for m in slack.messages if m["ts"] != parent]
            slack.took_it_bad = 1
            await q.enqueue(pool, dedupe_key="m-reply", channel="alerts", kind="alert",
                            payload={"text": "ALERT resolved reply"}, op="reply", target_id=fired)
            for _ in range(4):
                await pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
                await bot.drain(ignore_pace=True)
            shown = [(m["channel_id"], m["text"]) for m in slack.messages]
            assert shown == [("C0NEWALERTS", "ALERT resolved reply")], f"the channels show: {shown}"
    finally:
        await slack.stop()
