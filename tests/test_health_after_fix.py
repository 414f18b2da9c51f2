"""/health tells the operator what to do about a channel the bot cannot post to. Once they did it (invited the
bot) and the held messages went out, it must stop telling them to do it."""

from __future__ import annotations

import datetime as dt
import json

from tests.conftest import paid_checkout, start_bot
from tests.fakes import FakeSlack


async def test_health_stops_asking_for_an_invitation_once_posts_go_through(dsn: str, fake_slack: FakeSlack) -> None:
    fake_slack.add_channel("C0FIN", "finance", private=True)
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as bot:
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain(until_idle=False)
        assert await bot.deps.pool.fetchval("SELECT last_error FROM outbox WHERE kind = 'sale'") == \
            "channel_not_found"
        fake_slack.channels["C0FIN"].bot_member = True  # the operator types /invite @salespulse
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")  # the held retry, now due
        await bot.drain()
        assert [m["channel_id"] for m in fake_slack.messages] == ["C0FIN"]  # delivered: the channel works
        for n in range(2, 4):  # and keeps working
            await bot.stripe(paid_checkout(n, dt.datetime.now(dt.UTC)))
        await bot.drain(ignore_pace=True)
        body = await bot.command("/health")
    text = json.dumps(body["blocks"])
    assert "/invite @salespulse" not in text, \
        f"/health still asks for an invitation after the posts went through: {text}"
