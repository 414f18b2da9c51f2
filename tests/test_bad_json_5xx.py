"""A 5xx whose body is labelled JSON but is not (a proxy's or load balancer's error page) is Slack's trouble: the
ping must wait for Slack to come back, not be given up after three tries (README: 5xx retried forever)."""

from __future__ import annotations

from aiohttp import web

from tests.conftest import start_bot
from tests.fakes import Call, FakeSlack
from tests.test_delivery import send_sales


class BadGatewaySlack(FakeSlack):
    """Slack's edge answering chat.postMessage 503 with an HTML page sent as application/json, `bad` times."""

    bad: int = 0

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["method"] == "chat.postMessage" and self.bad > 0:
            self.bad -= 1
            self.calls.append(Call("chat.postMessage", {"_ok": False}, 503))
            return web.Response(status=503, body=b"<html><body>503 Service Unavailable</body></html>",
                                content_type="application/json")
        return await super()._api(request)


async def test_a_503_with_a_non_json_body_is_retried_not_given_up(dsn: str) -> None:
    slack = await BadGatewaySlack().start()
    slack.bad = 4
    try:
        async with start_bot(dsn, slack) as bot:
            await send_sales(bot, 1)
            for _ in range(5):
                await bot.deps.worker.drain()
                await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")
                await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
            row = await bot.deps.pool.fetchrow("SELECT status, last_error FROM outbox")
            assert row["status"] != "failed", f"sale ping given up over a 503: {dict(row)}"
    finally:
        await slack.stop()


class TookItBadGatewaySlack(FakeSlack):
    """Slack taking chat.postMessage (the message is in the channel), then its edge answering 503 with an HTML page
    sent as application/json, `bad` times: the answer says nothing about whether it landed."""

    bad: int = 0

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["method"] == "chat.postMessage" and self.bad > 0:
            self.bad -= 1
            args = await self._args(request)
            self._answer("chat.postMessage", args)
            self.calls.append(Call("chat.postMessage", {**args, "_ok": False}, 503))
            return web.Response(status=503, body=b"<html><body>503 Service Unavailable</body></html>",
                                content_type="application/json")
        return await super()._api(request)


async def test_a_burst_answered_by_an_unreadable_503_is_looked_up_not_posted_twice(dsn: str) -> None:
    """An answer that cannot be read is no refusal: the burst may be in the channel, so it is looked up before any
    resend (README: a post whose outcome is unknown is not simply sent again)."""
    slack = await TookItBadGatewaySlack().start()
    slack.bad = 1
    try:
        async with start_bot(dsn, slack) as bot:
            bot.deps.worker.backoff_scale = 0.0
            await send_sales(bot, 3)
            await bot.deps.worker.drain()  # one summary of the three: in the channel, its answer an HTML 503
            assert len(slack.messages) == 1 and await bot.deps.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE status = 'pending'") == 3
            await bot.drain(ignore_pace=True)
            assert len(slack.messages) == 1, [m["text"] for m in slack.messages]
            statuses = await bot.deps.pool.fetch("SELECT status, count(*) FROM outbox GROUP BY status ORDER BY 1")
            assert [tuple(r) for r in statuses] == [("coalesced", 3), ("delivered", 1)]  # the sales, and the summary
    finally:
        await slack.stop()
