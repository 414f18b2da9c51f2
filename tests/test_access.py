"""One access policy over every surface: alert buttons for responders only, Home without figures for others."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.alerts.engine import MANUAL_RESOLVE_GRACE
from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from tests.blockkit import assert_valid_view
from tests.conftest import Bot, FakeClock, paid_checkout, start_bot
from tests.fakes import FakeSlack

NY = ZoneInfo("America/New_York")
NOON = dt.datetime(2026, 6, 9, 14, 0, tzinfo=NY).astimezone(dt.UTC)  # a Tuesday, inside business hours


@pytest.fixture
async def clock() -> FakeClock:
    """The test's clock, on a Tuesday afternoon in New York."""
    return FakeClock(NOON)


async def firing_alert(bot: Bot, clock: FakeClock, dsn: str) -> tuple[int, AlertJobs]:
    """Three payment failures a minute ago, evaluated and delivered: one firing alert; its id and the jobs."""
    for n in range(3):
        await bot.deps.pool.execute(
            "INSERT INTO payment_failures (event_id, amount, currency, reason, created_at)"
            " VALUES ($1, 1000, 'USD', 'card_declined', $2)", f"evt_f{n}", clock.now - dt.timedelta(minutes=1))
    jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
    await jobs.tick()
    await bot.drain(ignore_pace=True)
    alert_id: int = await bot.deps.pool.fetchval("SELECT id FROM alerts WHERE resolved_at IS NULL")
    return alert_id, jobs


async def audit(bot: Bot, alert_id: int, *, count: int) -> list[tuple[str, str, str, str]]:
    """The recorded clicks on an alert, once `count` of them are there (listeners run after the ack)."""
    for _ in range(250):
        rows = await bot.deps.pool.fetch("SELECT user_id, action, outcome, surface FROM alert_actions"
                                         " WHERE alert_id = $1 ORDER BY id", alert_id)
        if len(rows) >= count:
            return [tuple(r) for r in rows]
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} recorded clicks")


async def state(bot: Bot, alert_id: int) -> dict[str, Any]:
    """Who acknowledged, silenced or resolved the alert."""
    row = await bot.deps.pool.fetchrow("SELECT acknowledged_by, silenced_by, resolved_by, resolved_at"
                                       " FROM alerts WHERE id = $1", alert_id)
    return dict(row)


async def test_only_responders_act_on_alerts_and_every_click_is_recorded(dsn: str, fake_slack: FakeSlack,
                                                                         clock: FakeClock) -> None:
    """ALERT_RESPONDERS set: a stranger's signed Resolve is refused (ephemeral), recorded, and changes nothing;
    the on-call person's Acknowledge works and is said in the alert's thread."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         ALERT_RESPONDERS="UONCALL") as bot:
        alert_id, jobs = await firing_alert(bot, clock, dsn)
        for action in ("alert_resolve", "alert_silence_1h", "alert_ack"):
            assert (await bot.button(action, str(alert_id), user="USTRANGER")).status == 200
        assert [row[2] for row in await audit(bot, alert_id, count=3)] == ["refused"] * 3
        assert await state(bot, alert_id) == {"acknowledged_by": None, "silenced_by": None, "resolved_by": None,
                                              "resolved_at": None}
        refusals = [c.args for c in fake_slack.calls if c.method == "hook:click"]
        assert len(refusals) == 3 and all("not allowed to act on alerts" in r["text"] for r in refusals)
        assert all(r.get("response_type") == "ephemeral" for r in refusals)

        assert (await bot.button("alert_ack", str(alert_id), user="UONCALL")).status == 200
        assert (await audit(bot, alert_id, count=4))[-1] == ("UONCALL", "ack", "applied", "slack")
        await bot.drain(ignore_pace=True)
        assert (await state(bot, alert_id))["acknowledged_by"] == "UONCALL"
        replies = [c.args["text"] for c in fake_slack.calls if c.method == "chat.postMessage" and
                   c.args.get("thread_ts")]
        assert replies and replies[-1].startswith("👀 Acknowledged by <@UONCALL>")
        await jobs.leadership.release()


async def test_a_user_group_names_the_responders(dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> None:
    """ALERT_RESPONDERS=S…: its members (usergroups.users.list) may act; others may not."""
    fake_slack.usergroups = {"S0ONCALL": ["UMEMBER"]}
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         ALERT_RESPONDERS="S0ONCALL") as bot:
        alert_id, jobs = await firing_alert(bot, clock, dsn)
        await bot.button("alert_ack", str(alert_id), user="UOUTSIDER")
        await bot.button("alert_ack", str(alert_id), user="UMEMBER")
        assert [(r[0], r[2]) for r in await audit(bot, alert_id, count=2)] == [("UOUTSIDER", "refused"),
                                                                               ("UMEMBER", "applied")]
        assert len([c for c in fake_slack.calls if c.method == "usergroups.users.list"]) == 1  # cached
        await jobs.leadership.release()


async def test_a_known_user_group_stands_in_only_briefly_while_slack_cannot_say() -> None:
    """usergroups.users.list failing: the last known members stand in for a blip (under GROUP_STALE_SECONDS), then
    nobody, so someone removed from the group does not keep acting for as long as the outage lasts; after a failure
    Slack is asked again only after GROUP_RETRY_SECONDS."""
    from bot.access import GROUP_CACHE_SECONDS, GROUP_RETRY_SECONDS, GROUP_STALE_SECONDS, _GroupCache

    now, failing, asked = [0.0], [False], [0]

    async def fetch(group: str) -> frozenset[str]:
        asked[0] += 1
        if failing[0]:
            raise ConnectionError("Slack is away")
        return frozenset({"UMEMBER"})

    cache = _GroupCache(fetch, clock=lambda: now[0])
    assert await cache.members("S0ONCALL") == {"UMEMBER"}
    failing[0] = True
    now[0] = GROUP_CACHE_SECONDS + 1  # due for a look-up, which fails: the known list stands in
    assert await cache.members("S0ONCALL") == {"UMEMBER"}
    for _ in range(20):  # Home asks for every viewer: Slack is not asked again until the retry time
        assert await cache.members("S0ONCALL") == {"UMEMBER"}
    assert asked[0] == 2
    now[0] = GROUP_STALE_SECONDS + 1
    assert await cache.members("S0ONCALL") == frozenset()
    assert asked[0] == 3
    failing[0] = False
    assert await cache.members("S0ONCALL") == frozenset()  # failed under GROUP_RETRY_SECONDS ago
    now[0] += GROUP_RETRY_SECONDS
    assert await cache.members("S0ONCALL") == {"UMEMBER"}


async def test_manual_resolve_does_not_silence_a_condition_that_still_holds(dsn: str, fake_slack: FakeSlack,
                                                                            clock: FakeClock) -> None:
    """Resolve by hand while failures continue: quiet for the grace period, then the alert fires anew."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        alert_id, jobs = await firing_alert(bot, clock, dsn)
        await bot.button("alert_resolve", str(alert_id), user="U1")
        await audit(bot, alert_id, count=1)
        for minutes in (5, int(MANUAL_RESOLVE_GRACE.total_seconds() // 60) + 1):
            clock.now = NOON + dt.timedelta(minutes=minutes)
            await bot.deps.pool.execute("UPDATE payment_failures SET created_at = $1",
                                        clock.now - dt.timedelta(minutes=1))  # still failing
            await jobs.tick()
            open_ids = [r["id"] for r in await bot.deps.pool.fetch("SELECT id FROM alerts WHERE resolved_at IS NULL")]
            if minutes == 5:
                assert open_ids == []  # within the grace period: the fix may still be taking
            else:
                assert len(open_ids) == 1 and open_ids[0] != alert_id  # a new alert: paged again
        await jobs.leadership.release()


async def test_home_shows_figures_only_to_revenue_readers(dsn: str, fake_slack: FakeSlack) -> None:
    """SLASH_COMMAND_ALLOWED_USERS set: the owner's Home shows revenue; anyone else's shows none."""
    now = dt.datetime.now(dt.UTC)
    async with start_bot(dsn, fake_slack, SLASH_COMMAND_ALLOWED_USERS="UBOSS") as bot:
        assert (await bot.stripe(paid_checkout(1, now - dt.timedelta(minutes=5), amount=123456))).status == 200
        for user in ("UBOSS", "UNOSY"):
            await bot.slack_event({"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"})
        for _ in range(250):
            views = {c.args["user_id"]: c.args["view"] for c in fake_slack.calls if c.method == "views.publish"}
            if len(views) == 2:
                break
            await asyncio.sleep(0.02)
        assert "1,234.56" in json.dumps(views["UBOSS"])
        hidden = json.dumps(views["UNOSY"])
        assert "1,234.56" not in hidden and "$" not in hidden and "only shown to the people" in hidden
        assert_valid_view(views["UNOSY"])


async def test_home_shows_alert_buttons_only_to_responders(dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> None:
    """Two revenue readers, one of them a responder: both see the firing alert on Home, only the responder with its
    buttons (a click from the other would only be refused)."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SLASH_COMMAND_ALLOWED_USERS="UBOSS,UREADER", ALERT_RESPONDERS="UBOSS") as bot:
        _, jobs = await firing_alert(bot, clock, dsn)
        await bot.deps.home.publish(["UBOSS", "UREADER"])
        views = {c.args["user_id"]: json.dumps(c.args["view"]) for c in fake_slack.calls if c.method == "views.publish"}
        assert "Payment failures" in views["UBOSS"] and "Payment failures" in views["UREADER"]
        assert "alert_ack" in views["UBOSS"] and "alert_ack" not in views["UREADER"]
        assert_valid_view(json.loads(views["UREADER"]))
        await jobs.leadership.release()


async def test_a_channel_list_alone_gives_no_dashboard_link(dsn: str, fake_slack: FakeSlack) -> None:
    """SLASH_COMMAND_ALLOWED_CHANNELS alone: /sales answers in that channel, but the dashboard, which has no
    channel, is for nobody, so `/sales link` there is refused; a user list admits its users to both."""
    async with start_bot(dsn, fake_slack, SLASH_COMMAND_ALLOWED_CHANNELS="C0SALES",
                         MONITORING_TOKEN="t-now-long-enough-for-a-token") as bot:
        assert "orders" in json.dumps(await bot.command("/sales", channel_id="C0SALES"))
        refused = json.dumps(await bot.command("/sales", "link", user_id="UANY", channel_id="C0SALES"))
        assert "/dashboard/link/" not in refused and "only available to the people" in refused
    async with start_bot(dsn, fake_slack, SLASH_COMMAND_ALLOWED_CHANNELS="C0SALES",
                         MONITORING_TOKEN="t-now-long-enough-for-a-token",
                         SLASH_COMMAND_ALLOWED_USERS="UBOSS") as bot:
        assert "/dashboard/link/" in json.dumps(await bot.command("/sales", "link", user_id="UBOSS",
                                                                  channel_id="C0SALES"))


LIVE = re.compile(r"<!(here|channel|everyone)[|>]|(?<![\w\u2060])@(here|channel|everyone)\b", re.IGNORECASE)


async def test_store_data_never_broadcasts(dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> None:
    """A product, a customer name and a site's error that spell @here, <!channel> or @everyone stay inert in the
    blocks and in the plain `text` fallback phone notifications show; the bot's own critical mention stays live."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SITE_URL="https://shop.example") as bot:
        sale = paid_checkout(7, clock.now - dt.timedelta(minutes=1), product="Course @here <!channel> @Everyone")
        sale["data"]["object"]["customer_details"]["name"] = "<!everyone> @channel"
        assert (await bot.stripe(sale)).status == 200
        await bot.deps.pool.execute(
            "INSERT INTO site_probes (url, checked_at, ok, status, elapsed_ms, error)"
            " VALUES ('https://shop.example', $1, false, 503, 20, 'HTTP 503 <!channel> @here down')",
            clock.now - dt.timedelta(seconds=30))
        for n in range(10):  # and a critical alert, whose own <!here> must page
            await bot.deps.pool.execute(
                "INSERT INTO payment_failures (event_id, amount, currency, reason, created_at)"
                " VALUES ($1, 1000, 'USD', '<!channel> declined @here', $2)", f"evt_x{n}",
                clock.now - dt.timedelta(seconds=30))
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        await jobs.tick()
        await bot.drain(ignore_pace=True)
        await jobs.leadership.release()
        posts = [c.args for c in fake_slack.calls if c.method == "chat.postMessage"]
        assert any("Course" in p["text"] for p in posts) and any("CRITICAL" in p["text"] for p in posts)
        for post in posts:
            mention = "<!here> " if "CRITICAL" in post["text"] else ""
            assert post["text"].startswith(mention) and not LIVE.search(post["text"].removeprefix(mention)), post
            section_texts = json.dumps(post.get("blocks") or [], ensure_ascii=False).replace('"<!here> ', '"')
            assert not LIVE.search(section_texts), post


async def test_share_is_refused_to_those_who_may_not_read_revenue(dsn: str, fake_slack: FakeSlack) -> None:
    """A Share click (signed) from someone outside SLASH_COMMAND_ALLOWED_USERS posts nothing in the channel."""
    async with start_bot(dsn, fake_slack, SLASH_COMMAND_ALLOWED_USERS="UBOSS") as bot:
        value = json.dumps({"command": "/sales", "arg": "30d"})
        assert (await bot.button("share_in_channel", value, user="UINTERN", channel="C1")).status == 200
        assert (await bot.button("share_in_channel", value, user="UBOSS", channel="C1")).status == 200
        for _ in range(250):
            hooks = [c.args for c in fake_slack.calls if c.method == "hook:click"]
            if {"in_channel", "ephemeral"} <= {h.get("response_type") for h in hooks}:
                break
            await asyncio.sleep(0.02)
        in_channel = [h for h in hooks if h.get("response_type") == "in_channel"]
        refusals = [h for h in hooks if h.get("response_type") == "ephemeral"]
        assert len(in_channel) == 1 and "Shared by <@UBOSS>" in json.dumps(in_channel[0])
        assert len(refusals) == 1 and "only available" in refusals[0]["text"]


async def test_a_button_pressed_on_an_alert_already_resolved_says_so(dsn: str, fake_slack: FakeSlack,
                                                                     clock: FakeClock) -> None:
    """Acknowledge pressed on an alert someone resolved a moment before (its message not updated yet): the presser
    is told, in an ephemeral answer, that nothing changed, instead of hearing nothing."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         ALERT_RESPONDERS="UONCALL,UOTHER") as bot:
        alert_id, _ = await firing_alert(bot, clock, dsn)
        assert (await bot.button("alert_resolve", str(alert_id), user="UONCALL")).status == 200
        assert (await audit(bot, alert_id, count=1))[-1][2] == "applied"
        assert (await bot.button("alert_ack", str(alert_id), user="UOTHER")).status == 200
        assert (await audit(bot, alert_id, count=2))[-1][2] != "applied"
        said = [c.args for c in fake_slack.calls if c.method == "hook:click"]
        for _ in range(250):
            if said:
                break
            await asyncio.sleep(0.02)
            said = [c.args for c in fake_slack.calls if c.method == "hook:click"]
        assert [(s.get("response_type"), s["text"]) for s in said] == [
            ("ephemeral", "This alert is already resolved: nothing changed. Its message is updated in a moment.")]
        assert (await state(bot, alert_id))["acknowledged_by"] is None
