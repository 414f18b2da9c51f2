"""Slack as it really is: chat:write.public posts without joining but cannot read back or share files, so
the bot joins its public channels; private ones need an invitation, which /health and `check` ask for."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli.main import main
from bot.delivery.channels import ChannelDirectory, Membership
from bot.delivery.senders import Seen
from bot.delivery.webapi import WebApiSender
from tests.conftest import paid_checkout, post_report, start_bot
from tests.fakes import FakeSlack, Fault
from tests.report_seed import at

NY = ZoneInfo("America/New_York")
EVENING = at(NY, 2026, 3, 10, 18, 0, 30)


def methods(fake: FakeSlack) -> list[str]:
    """The Web API methods called so far, in order."""
    return [c.method for c in fake.calls]


def sender_for(fake: FakeSlack) -> tuple[WebApiSender, ChannelDirectory]:
    """The bot's Web API sender and channel directory, talking to `fake`."""
    client = AsyncWebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[])
    directory = ChannelDirectory(client, {"sales": "#sales-notifications"})
    return WebApiSender(client, channels={"sales": "#sales-notifications"}, directory=directory), directory


async def test_start_up_resolves_names_and_joins_the_public_channels(dsn: str, fake_slack: FakeSlack) -> None:
    """At start-up the bot lists channels once and joins each configured public channel it is not in."""
    async with start_bot(dsn, fake_slack) as bot:
        assert bot.deps.channels is not None
        assert {s.logical: (s.channel_id, s.membership) for s in bot.deps.channels.statuses()} == {
            "sales": ("C0SALES", Membership.MEMBER), "alerts": ("C0ALERTS", Membership.MEMBER),
            "reports": ("C0REPORTS", Membership.MEMBER)}
    assert methods(fake_slack) == ["conversations.list"] + ["conversations.join"] * 3
    assert sorted(c.args["channel"] for c in fake_slack.calls if c.method == "conversations.join") == [
        "C0ALERTS", "C0REPORTS", "C0SALES"]
    assert all(c.bot_member for c in fake_slack.channels.values())


async def test_a_channel_renamed_after_start_up_still_gets_its_posts(fake_slack: FakeSlack) -> None:
    """Someone renames #sales-notifications: its name no longer resolves (channel_not_found, failed for good), but
    posts go to the id resolved at start-up and keep arriving."""
    sender, directory = sender_for(fake_slack)
    await directory.start()
    fake_slack.channels["C0SALES"].name = "sales-pings"
    result = await sender.post("sales", {"text": "💰 New Sale"})
    assert (result.status.value, result.channel_id) == ("ok", "C0SALES")
    assert [c.args["channel"] for c in fake_slack.calls if c.method == "chat.postMessage"] == ["C0SALES"]
    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url, retry_handlers=[])
    retargeted = WebApiSender(client, channels={"sales": "#elsewhere"}, directory=directory)
    await retargeted.post("sales", {"text": "x"})  # configured anew, not resolved yet: the name as configured
    assert [c.args["channel"] for c in fake_slack.calls if c.method == "chat.postMessage"][-1] == "#elsewhere"


async def test_fake_slack_enforces_membership_like_slack(fake_slack: FakeSlack) -> None:
    """Public: post without joining, history not_in_channel; private: channel_not_found and no joining."""
    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url, retry_handlers=[])
    fake_slack.add_channel("C0FIN", "finance", private=True)
    answers = {}
    for name, call in {
        "post public": client.api_call("chat.postMessage", json={"channel": "#sales-notifications", "text": "x"}),
        "history public": client.api_call("conversations.history", params={"channel": "C0SALES"}),
        "post private": client.api_call("chat.postMessage", json={"channel": "C0FIN", "text": "x"}),
        "join private": client.api_call("conversations.join", json={"channel": "C0FIN"}),
        "join public": client.api_call("conversations.join", json={"channel": "C0SALES"}),
        "history joined": client.api_call("conversations.history", params={"channel": "C0SALES"}),
    }.items():
        try:
            answers[name] = (await call).get("error", "ok")
        except SlackApiError as exc:  # slack_sdk raises for ok: false; keep Slack's error string
            answers[name] = exc.response["error"]
    assert answers == {"post public": "ok", "history public": "not_in_channel", "post private": "channel_not_found",
                       "join private": "method_not_supported_for_channel_type", "join public": "ok",
                       "history joined": "ok"}


async def test_look_up_joins_on_not_in_channel_and_finds_the_message(fake_slack: FakeSlack) -> None:
    """A look-up answered not_in_channel makes the bot join, then look again — and find its own message."""
    sender, _ = sender_for(fake_slack)
    posted = await sender.post("sales", {"text": "a sale"}, ref=41)
    assert posted.channel_id == "C0SALES"  # Slack answers with the id, whatever name was posted to
    found = await sender.find(channel_id="C0SALES", ref=41, since=0)
    assert found is not None and found.ts == posted.ts
    assert methods(fake_slack) == ["chat.postMessage", "conversations.history", "conversations.join",
                                   "conversations.history"]


async def test_look_up_that_cannot_join_says_why(fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """A refused join leaves the look-up unanswerable (NEVER), logged and recorded with the reason for /health."""
    sender, directory = sender_for(fake_slack)
    await directory.resolve()
    fake_slack.chaos = lambda method: Fault(200, error="missing_scope") if method == "conversations.join" else None
    assert (await sender.find(channel_id="C0SALES", ref=1, since=0)).seen is Seen.NEVER
    [status] = directory.statuses()
    assert status.membership is Membership.JOIN_FAILED and "could not join (missing_scope)" in status.describe()
    assert "not_in_channel, and joining failed: missing_scope" in caplog.text


async def test_message_on_page_three_is_found(fake_slack: FakeSlack) -> None:
    """The look-up follows response_metadata.next_cursor through the window, not only the first page."""
    fake_slack.channels["C0SALES"].bot_member = True
    fake_slack.page_size = 2  # Slack may answer fewer messages than `limit` asks for
    sender, _ = sender_for(fake_slack)
    target = await sender.post("sales", {"text": "the one"}, ref=7)
    for n in range(5):  # newer messages come first: these fill pages 1 and 2 and start page 3
        await sender.post("sales", {"text": f"later {n}"}, ref=100 + n)
    found = await sender.find(channel_id="C0SALES", ref=7, since=0)
    assert found is not None and found.ts == target.ts
    history = [c.args for c in fake_slack.calls if c.method == "conversations.history"]
    assert len(history) == 3 and "cursor" not in history[0] and history[2]["cursor"]
    assert (await sender.find(channel_id="C0SALES", ref=999, since=0)).seen is Seen.NOT_FOUND  # after the last page



async def test_report_chart_arrives_in_a_channel_the_bot_was_not_in(dsn: str, fake_slack: FakeSlack) -> None:
    """The report posts (chat:write.public); sharing its chart answers not_in_channel; the bot joins, shares."""
    fake_slack.add_channel("C0WEEKLY", "weekly-numbers")
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York",
                         SLACK_REPORTS_CHANNEL="#weekly-numbers") as bot:
        fake_slack.channels["C0WEEKLY"].bot_member = False  # e.g. someone removed the bot since start-up
        reporter = await post_report(bot)
        assert await reporter.upload_charts() == 1
    after = methods(fake_slack)[methods(fake_slack).index("files.getUploadURLExternal"):]
    assert after == ["files.getUploadURLExternal", "upload:F00000001", "files.completeUploadExternal",
                     "conversations.join", "files.completeUploadExternal"]
    [shared] = fake_slack.posted("files.completeUploadExternal")
    assert shared["channel_id"] == "C0WEEKLY" and fake_slack.channels["C0WEEKLY"].bot_member


async def test_chart_that_cannot_join_is_skipped_with_the_reason(dsn: str, fake_slack: FakeSlack) -> None:
    """not_in_channel after a refused join is recorded as such, with what to do, not as a bare error."""
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York") as bot:
        fake_slack.channels["C0REPORTS"].bot_member = False
        reporter = await post_report(bot)
        fake_slack.chaos = lambda m: Fault(200, error="missing_scope") if m == "conversations.join" else None
        assert await reporter.upload_charts() == 0
        row = await bot.deps.pool.fetchrow("SELECT chart_status, chart_error FROM reports")
    assert row["chart_status"] == "skipped"
    assert row["chart_error"].startswith("not_in_channel, and joining failed: missing_scope: #daily-reports is"
                                         " public but the bot could not join (missing_scope)")
    assert "/invite @salespulse" in row["chart_error"]


async def test_health_names_a_private_channel_without_the_bot(dsn: str, fake_slack: FakeSlack) -> None:
    """A private alerts channel the bot was never invited to: posts fail, /health says what to do."""
    fake_slack.add_channel("C0FIN", "finance", private=True)
    async with start_bot(dsn, fake_slack, SLACK_ALERTS_CHANNEL="#finance") as bot:
        body = await bot.command("/health")
    text = json.dumps(body["blocks"])
    assert "*Slack channel alerts* #finance: channel not found \\u2014 if it is private, the bot is not a" \
           " member: /invite @salespulse" in text
    assert "conversations.join" not in [c.args.get("channel") for c in fake_slack.calls]
    assert "C0FIN" not in [c.args.get("channel") for c in fake_slack.calls if c.method == "conversations.join"]


async def test_health_says_private_once_the_bot_has_been_removed(dsn: str, fake_slack: FakeSlack) -> None:
    """A private channel the bot was in, then removed from: Slack hides it; /health knows it is private, and the
    sale waits for the invitation rather than being lost."""
    fake_slack.add_channel("C0FIN", "finance", private=True, member=True)
    async with start_bot(dsn, fake_slack, SLACK_SALES_CHANNEL="#finance") as bot:
        fake_slack.channels["C0FIN"].bot_member = False
        await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))
        await bot.drain(until_idle=False)
        assert await bot.deps.pool.fetchval("SELECT last_error FROM outbox WHERE kind = 'sale'") == \
            "channel_not_found"
        body = await bot.command("/health")
        fake_slack.channels["C0FIN"].bot_member = True  # /invite @salespulse
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now()")  # the held retry, now due
        await bot.drain()
        assert [m["channel_id"] for m in fake_slack.messages] == ["C0FIN"]
    assert "#finance is private and the bot is not a member: /invite @salespulse" in json.dumps(body["blocks"])


async def test_check_names_each_channel_the_bot_cannot_use(dsn: str, fake_slack: FakeSlack,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse check` lists sales, alerts and reports with their standing and exits 1 for a hidden one."""
    fake_slack.add_channel("C0FIN", "finance", private=True)
    fake_slack.channels["C0SALES"].bot_member = True
    for name, value in {"DATABASE_URL": dsn, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s",
                        "SLACK_API_URL": fake_slack.url, "SLACK_REPORTS_CHANNEL": "#finance",
                        "SLACK_ALERTS_CHANNEL": "#gone"}.items():
        monkeypatch.setenv(name, value)
    assert await asyncio.to_thread(main, ["check"]) == 1
    out = capsys.readouterr().out
    assert "channel sales:    ok — #sales-notifications: the bot is a member" in out
    assert "channel alerts:   PROBLEM — #gone: channel not found" in out
    assert "channel reports:  PROBLEM — #finance: channel not found — if it is private, the bot is not a member:" \
           " /invite @salespulse" in out
