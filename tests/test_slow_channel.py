"""One channel's slow Slack call must not hold the other channels: README promises alerts overtake and channels
are paced independently (about one message a second each)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiohttp import web

from queries import outbox as q
from tests.conftest import start_bot
from tests.fakes import FakeSlack
from tests.test_delivery import send_sales

SLOW = 6.0  # below the client's 10 s timeout: Slack answers, just late


class SlowSalesSlack(FakeSlack):
    """Slack answering posts to the sales channel late (and only those)."""

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["method"] == "chat.postMessage":
            args: dict[str, Any] = await self._args(request)
            if args.get("channel") == "C0SALES":
                await asyncio.sleep(SLOW)
        return await super()._api(request)


async def test_slow_sales_post_does_not_hold_the_alerts_channel(dsn: str) -> None:
    slack = await SlowSalesSlack().start()
    try:
        async with start_bot(dsn, slack, background_worker=True) as bot:
            for n in range(3):
                await q.enqueue(bot.deps.pool, dedupe_key=f"test-alert-{n}", channel="alerts", kind="alert",
                                payload={"text": f"alert {n}"})
            await send_sales(bot, 1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while loop.time() < deadline:
                alerts = [c for c in slack.calls if c.method == "chat.postMessage"
                          and c.args.get("channel") == "C0ALERTS" and c.answered == 200]
                if len(alerts) == 3:
                    break
                await asyncio.sleep(0.05)
            assert len(alerts) == 3
            gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(alerts)]
            # Paced at one a second in their own channel: each next alert within ~2 s of the one before.
            assert max(gaps) < 2.5, f"alerts held behind a slow post to another channel: gaps {gaps} s"
    finally:
        await slack.stop()
