"""The local feed: its memory of posts and updates, Block Kit drawn as escaped HTML, and its routes — the
page, the event stream, the command box and the buttons — in local mode only."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from bot.answers.share import shared_message
from bot.blocks.common import share_actions
from bot.blocks.elements import actions, button, context, divider, fields, header, section
from bot.blocks.message import Message
from bot.web.feed import LocalFeed
from bot.web.feed_render import mrkdwn, render_message
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack


def test_feed_keeps_posts_updates_and_replies_per_channel() -> None:
    """Posts get a place, updates replace the message (marked edited), replies keep their thread."""
    feed = LocalFeed()
    feed.add("sales", {"text": "one", "blocks": [], "ts": "1.1", "thread_ts": None})
    feed.add("alerts", {"text": "alert", "blocks": [], "ts": "2.1", "thread_ts": None})
    feed.add("alerts", {"text": "reply", "blocks": [], "ts": "3.1", "thread_ts": "2.1"})
    feed.add("alerts", {"text": "alert, acknowledged", "blocks": [], "ts": "2.1", "update": True})
    feed.add("alerts", {"text": "gone", "ts": "9.9", "update": True})  # never posted: nothing to change
    assert feed.seq == 4 and feed.channels() == ["sales", "alerts"]
    alert, reply = feed.messages("alerts")
    assert (alert.text, alert.edited, alert.seq, alert.pos) == ("alert, acknowledged", True, 4, 2)
    assert (reply.thread_ts, reply.edited) == ("2.1", False)
    assert [e.text for e in feed.since(0)] == ["one", "reply", "alert, acknowledged"]
    assert [e.text for e in feed.since(3)] == ["alert, acknowledged"]


def test_feed_keeps_the_latest_messages_of_each_channel() -> None:
    """Beyond the bound, a channel forgets its oldest messages; other channels keep theirs."""
    feed = LocalFeed(per_channel=3)
    feed.add("reports", {"text": "report", "ts": "0.1"})
    for n in range(5):
        feed.add("sales", {"text": f"sale {n}", "ts": f"{n + 1}.1"})
    assert [e.text for e in feed.messages("sales")] == ["sale 2", "sale 3", "sale 4"]
    assert [e.text for e in feed.messages("reports")] == ["report"]


async def test_waiters_wake_on_a_change_and_on_close() -> None:
    """wait() returns True as soon as something changes, False on timeout or when the feed closes."""
    feed = LocalFeed()
    assert await feed.wait(0, within=0.01) is False
    waiter = asyncio.create_task(feed.wait(0, within=5))
    await asyncio.sleep(0)
    feed.add("sales", {"text": "hi", "ts": "1.1"})
    assert await waiter is True
    closing = asyncio.create_task(feed.wait(1, within=5))
    await asyncio.sleep(0)
    feed.close()
    assert await asyncio.wait_for(closing, 1) is False


@pytest.mark.parametrize(("source", "expected"), [
    ("*New sale* of _Pro Course_ ~old~", "<b>New sale</b> of <i>Pro Course</i> <s>old</s>"),
    ("jo_hn_doe@example.com 5 * 3 * 2", "jo_hn_doe@example.com 5 * 3 * 2"),
    ("&lt;script&gt;alert(1)&lt;/script&gt; &amp; <b>", "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;"),
    ("`*not bold*` and ```pre <x>```", "<code>*not bold*</code> and <pre>pre &lt;x&gt;</pre>"),
    ("line one\nline two", "line one<br>line two"),
    ("<@U123> <!here> <#C1|general> <!subteam^S1|@ops>",
     '<span class="mention">@U123</span> <span class="mention">@here</span> '
     '<span class="mention">#general</span> <span class="mention">@ops</span>'),
    ("*<https://x.example/d?a=1&amp;b=2|Open it>*",
     '<b><a href="https://x.example/d?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">Open it</a></b>'),
    ('<javascript:alert(1)|click> <https://x.example/"onmouseover=x|y>',
     '&lt;javascript:alert(1)|click&gt; <a href="https://x.example/&quot;onmouseover=x" target="_blank"'
     ' rel="noopener noreferrer">y</a>'),
    ("\x000\x00 smuggled placeholder", "0 smuggled placeholder"),
])
def test_mrkdwn_is_drawn_and_everything_else_escaped(source: str, expected: str) -> None:
    """Slack's markup becomes a fixed set of tags; text, entities and unsafe links stay inert."""
    assert mrkdwn(source) == expected


def test_every_block_kind_is_drawn_with_its_text_escaped() -> None:
    """Header, fields, context, divider and buttons render; plain text and button values are escaped."""
    msg = Message(text="t", blocks=[
        header("<b>Hi</b> & bye"), fields(("Product", "Bundle"), ("Amount", "$1.00")), context("⏰ *now*"),
        divider(), section("x"),
        actions(button('Go "now"', action_id="alert_ack", value='{"a":"<x>"}', style="danger")),
        {"type": "mystery"}])
    assert_valid_message({"text": "t", "blocks": msg.blocks[:-1]})
    out = render_message(msg.text, msg.blocks)
    assert '<div class="block header">&lt;b&gt;Hi&lt;/b&gt; &amp; bye</div>' in out
    assert '<div class="field"><b>Product:</b><br>Bundle</div>' in out
    assert '<div class="block context"><span>⏰ <b>now</b></span></div>' in out
    assert '<hr class="block divider">' in out
    assert ('<button type="button" class="btn danger" data-action-id="alert_ack"'
            ' data-value="{&quot;a&quot;:&quot;&lt;x&gt;&quot;}">Go &quot;now&quot;</button>') in out
    assert '<div class="block unsupported">[mystery block]</div>' in out
    only_text = '<div class="block section"><div class="text"><b>only</b> text</div></div>'
    assert render_message("*only* text", []) == only_text


def test_shared_answer_names_who_and_the_command_escaped() -> None:
    """The shared copy ends with who shared it and the command, with Slack's special characters escaped."""
    msg = shared_message(Message("Sales", [section("x"), share_actions("/sales", "7d")]), user_id="U1",
                         command="/sales", arg="<!channel>")
    assert msg.blocks[-1]["elements"][0]["text"] == "Shared by <@U1> with `/sales &lt;!channel&gt;`"
    assert_valid_message(msg)


async def test_no_feed_outside_local_mode(bot: Bot) -> None:
    """With a bot token, GET / and the feed's routes are not there."""
    assert bot.deps.feed is None
    assert (await bot.client.get("/")).status == 404
    assert (await bot.client.post("/feed/command", json={"line": "/sales"})).status == 404


async def test_page_and_assets_carry_a_strict_policy(local_bot: Bot) -> None:
    """GET / is the page with a CSP allowing only its own script and style; they are served with their hash."""
    resp = await local_bot.client.get("/")
    assert resp.status == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    page = await resp.text()
    assert "#sales-notifications" in page and "<script src=\"/feed/static/feed.js?v=" in page
    assert "http://" not in page and "https://" not in page  # nothing external
    for name, kind in (("feed.js", "text/javascript"), ("feed.css", "text/css")):
        asset = await local_bot.client.get(f"/feed/static/{name}")
        assert asset.status == 200 and asset.content_type == kind
    assert (await local_bot.client.get("/feed/static/feed.html")).status == 404


@pytest.mark.parametrize(("host", "status"), [
    ("localhost:3000", 200), ("127.0.0.1:3000", 200), ("[::1]:3000", 200), ("192.168.1.20:3000", 200),
    ("attacker.example:3000", 421), ("localhost.attacker.example", 421),
])
async def test_feed_answers_only_to_hosts_no_dns_can_rebind(local_bot: Bot, host: str, status: int) -> None:
    """A page on a name an attacker controls (DNS rebinding to 127.0.0.1) gets nothing."""
    assert (await local_bot.client.get("/", headers={"Host": host})).status == status
    if status != 200:
        assert (await command(local_bot, "/sales", Host=host)).status == status


async def command(bot: Bot, line: str, **headers: str) -> Any:
    """POST a line to the command box."""
    return await bot.client.post("/feed/command", json={"line": line, "channel": "sales"}, headers=headers)


@pytest.mark.parametrize(("line", "shown"), [
    ("/sales", "Sales · Today"), ("sales 24h", "Sales · Last 24 hours"), ("/health", "<b>PostgreSQL</b>"),
    ("/errors help", "webhook errors, payment failures"), ("/sales forever", "know <code>forever</code>"),
    ("/refunds", "Unknown command"),
])
async def test_command_box_answers_like_the_slash_commands(local_bot: Bot, line: str, shown: str) -> None:
    """What the box answers is what Slack would show privately, drawn as HTML."""
    assert (await local_bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC)))).status == 200
    resp = await command(local_bot, line)
    assert resp.status == 200
    body = await resp.json()
    assert shown in body["html"] or shown in body["text"], body
    assert body["command"] == ("/" + line.lstrip("/"))


async def test_command_box_refuses_other_sites(local_bot: Bot) -> None:
    """Another origin, a cross-site fetch or a form post cannot type commands."""
    assert (await command(local_bot, "/sales", Origin="https://evil.example")).status == 403
    assert (await command(local_bot, "/sales", **{"Sec-Fetch-Site": "cross-site"})).status == 403
    form = await local_bot.client.post("/feed/command", data={"line": "/sales"})
    assert form.status == 415
    for body, error in ((b"[1]", "expected a JSON object"), (b'{"line": ', "body is not valid JSON")):
        resp = await local_bot.client.post("/feed/command", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert (await resp.json())["error"] == error  # what the page shows under the command box


@pytest.mark.parametrize("path", ["/feed/command", "/feed/action", "/feed/view"])
@pytest.mark.parametrize("body", [b'{"pad": "' + b"x" * (1024 * 1024 + 10) + b'"}', b"[" * 50_000 + b"]" * 50_000,
                                  b'{"line": "/sales \xff\xfe"}', b"\x00\x01", b"", b"null",
                                  b'{"line": ["/sales"], "action_id": {"x": 1}, "value": null}'])
async def test_feed_posts_survive_any_body(local_bot: Bot, path: str, body: bytes) -> None:
    """Oversized, deeply nested, invalid UTF-8 or oddly typed bodies get a 4xx (or a usage answer), never a 5xx."""
    resp = await local_bot.client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert resp.status < 500, resp.status


async def test_allowlists_are_for_slack_ids_not_the_owner(dsn: str, fake_slack: FakeSlack) -> None:
    """SLASH_COMMAND_ALLOWED_USERS lists Slack people; whoever runs the bot locally still gets the figures."""
    async with start_bot(dsn, fake_slack, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None,
                         SLASH_COMMAND_ALLOWED_USERS="UONLY") as bot:
        body = await (await command(bot, "/sales")).json()
        assert "Sales · Today" in body["html"] and "only available" not in body["text"]


async def test_share_posts_the_answer_in_the_channel(local_bot: Bot) -> None:
    """The Share button posts a fresh answer where the command was typed, through the sender (stdout too)."""
    resp = await local_bot.client.post("/feed/action", json={
        "action_id": "share_in_channel", "value": json.dumps({"command": "/sales", "arg": "7d"}),
        "channel": "reports"})
    assert resp.status == 200 and (await resp.json())["delete_original"] is True
    [posted] = local_bot.deps.feed.messages("reports") if local_bot.deps.feed else []
    assert posted.text.startswith("📊 Sales · Last 7 days")
    assert posted.blocks[-1]["elements"][0]["text"] == "Shared by <@you> with `/sales 7d`"
    for bad in ({"action_id": "share_in_channel", "value": "nope", "channel": "sales"},
                {"action_id": "share_in_channel", "value": "{}", "channel": "#elsewhere"},
                {"action_id": "launch_rockets", "value": "1", "channel": "sales"},
                {"action_id": "alert_ack", "value": "1; DROP TABLE alerts", "channel": "alerts"}):
        assert (await local_bot.client.post("/feed/action", json=bad)).status == 400, bad


async def read_events(resp: Any, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    """The next `count` events of a text/event-stream as (id, event, data), comments skipped."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    while len(events) < count:
        chunk = (await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)).decode()
        fields_ = dict(line.split(": ", 1) for line in chunk.strip().splitlines() if not line.startswith(":")
                       and ": " in line)
        if "data" in fields_:
            events.append((fields_.get("id", ""), fields_.get("event", "message"), json.loads(fields_["data"])))
    return events


async def test_event_stream_replays_follows_and_resumes(local_bot: Bot) -> None:
    """The stream sends what is there, then each new post and update; a resumed stream sends only what it
    missed, and one from before a restart (another epoch) is told to start over."""
    feed = local_bot.deps.feed
    assert feed is not None
    sender = local_bot.deps.sender
    first = await sender.post("sales", {"text": "first", "blocks": [section("*first*")]})
    resp = await local_bot.client.get("/feed/events")
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    [(first_id, _, data)] = await read_events(resp, 1)
    assert data["text"] == "first" and data["html"].endswith("<b>first</b></div></div>")
    assert data["channel"] == "sales" and data["ts"] == first.ts and not data["edited"]
    await sender.update("sales", channel_id="local-sales", ts=str(first.ts), payload={"text": "first, edited"})
    await sender.post("alerts", {"text": "second"})
    events = await read_events(resp, 2)
    assert [(e[2]["text"], e[2]["edited"]) for e in events] == [("first, edited", True), ("second", False)]
    resp.close()

    resumed = await local_bot.client.get("/feed/events", headers={"Last-Event-ID": first_id})
    assert [e[2]["text"] for e in await read_events(resumed, 2)] == ["first, edited", "second"]
    resumed.close()
    stale = await local_bot.client.get("/feed/events", headers={"Last-Event-ID": "0ther-99"})
    reset, *replayed = await read_events(stale, 3)
    assert reset[1] == "reset" and [e[2]["text"] for e in replayed] == ["first, edited", "second"]
    stale.close()


async def test_sale_ping_reaches_the_feed(local_bot: Bot) -> None:
    """A signed Stripe sale goes through the outbox to the console sender and into #sales on the feed."""
    assert (await local_bot.stripe(paid_checkout(5, dt.datetime.now(dt.UTC), amount=4900))).status == 200
    feed = local_bot.deps.feed
    assert feed is not None
    for _ in range(100):
        if feed.messages("sales"):
            break
        await asyncio.sleep(0.05)
    [ping] = feed.messages("sales")
    assert ping.text.startswith("💰 New Sale: $49.00") and "New Sale!" in render_message(ping.text, ping.blocks)
