"""Alert rules and their Slack lifecycle, with an injected clock, real PostgreSQL and the fake Slack."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from bot.alerts.respond import silence_end
from bot.alerts.rules import business_time_between
from bot.blocks.alerts import SILENCE_TOMORROW_ACTION
from bot.config import HourWindow
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fakes import FakeSlack

NY = ZoneInfo("America/New_York")
# Tuesday 14:00 in New York: inside the default 09:00-21:00 business hours.
NOON = dt.datetime(2026, 6, 9, 14, 0, tzinfo=NY).astimezone(dt.UTC)


@pytest.fixture
async def clock() -> FakeClock:
    """The test's clock, starting on a Tuesday afternoon in New York."""
    return FakeClock(NOON)


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> AsyncIterator[Bot]:
    """A New York store whose alert jobs the test runs by hand."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        yield bot


@pytest.fixture
async def jobs(store: Bot, dsn: str) -> AsyncIterator[AlertJobs]:
    """The alert jobs of that store, leader of its database."""
    jobs = AlertJobs(store.deps, leadership=Leadership(dsn))
    yield jobs
    await jobs.leadership.release()


SYNC_AGAIN = "UPDATE app_events SET occurred_at = $1, received_at = $1"  # the sync failure, reported again


def just_before(clock: FakeClock) -> dt.datetime:
    """A moment ago: windows are half-open, [now - window, now)."""
    return clock.now - dt.timedelta(seconds=30)


async def failures(bot: Bot, count: int, at: dt.datetime) -> None:
    """Record `count` failed payments at `at`."""
    for n in range(count):
        await bot.deps.pool.execute(
            "INSERT INTO payment_failures (event_id, amount, currency, reason, created_at)"
            " VALUES ($1, 1000, 'USD', 'card_declined', $2)", f"evt_f_{at.timestamp()}_{n}", at)


async def run(jobs: AlertJobs, bot: Bot) -> list[dict[str, Any]]:
    """Evaluate once and deliver; return every Slack call made so far, as (method, args)."""
    await jobs.tick()
    await bot.drain(ignore_pace=True)
    return [{"method": c.method, **c.args} for c in bot.slack_api.calls]


def alert_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls about alerts (header mentions a severity)."""
    return [c for c in calls if "CRITICAL" in c.get("text", "") or "WARNING" in c.get("text", "")
            or c.get("thread_ts")]


async def test_payment_failure_warning_fires_at_three_not_two(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Two failures in 10 minutes: nothing; the third: one warning message with buttons."""
    await failures(store, 2, clock.now - dt.timedelta(minutes=5))
    assert alert_calls(await run(jobs, store)) == []
    await failures(store, 1, clock.now - dt.timedelta(minutes=1))
    calls = alert_calls(await run(jobs, store))
    assert len(calls) == 1 and calls[0]["method"] == "chat.postMessage"
    assert "WARNING · Payment failures" in calls[0]["text"] and "<!here>" not in calls[0]["text"]
    assert_valid_message(calls[0])
    assert [e["action_id"] for b in calls[0]["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "alert_ack", "alert_silence_1h", "alert_silence_tomorrow", "alert_resolve"]


async def test_keep_firing_for_holds_an_alert_through_a_dip(dsn: str, fake_slack: FakeSlack, clock: FakeClock,
                                                             tmp_path: Path) -> None:
    """keep_firing_for_minutes = 30: failures that leave the window keep the warning open, their return within
    the half hour is the same alert (no second post), and it resolves 30 minutes after it last held."""
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.payment_failures_warning]\nkeep_firing_for_minutes = 30\n", encoding="utf-8")
    count = "SELECT count(*) FILTER (WHERE resolved_at IS NULL), count(*) FROM alerts WHERE rule = $1"
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         ALERT_RULES_FILE=str(rules)) as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            await failures(bot, 3, clock.now - dt.timedelta(minutes=1))
            assert len(alert_calls(await run(jobs, bot))) == 1
            clock.advance(minutes=20)  # the failures left the 10-minute window: false, but held 19 min ago
            await run(jobs, bot)
            assert tuple(await bot.deps.pool.fetchrow(count, "payment_failures_warning")) == (1, 1)
            await failures(bot, 3, clock.now - dt.timedelta(minutes=1))
            await run(jobs, bot)
            clock.advance(minutes=29)
            calls = alert_calls(await run(jobs, bot))
            assert len(calls) == 1 and tuple(await bot.deps.pool.fetchrow(count, "payment_failures_warning")) == (1, 1)
            clock.advance(minutes=2)
            await run(jobs, bot)
            assert tuple(await bot.deps.pool.fetchrow(count, "payment_failures_warning")) == (0, 1)
        finally:
            await jobs.leadership.release()


async def test_critical_inhibits_the_warning_of_its_family(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Ten failures fire the critical (with <!here>) and the payment-failure warning stays silent."""
    await failures(store, 10, clock.now - dt.timedelta(minutes=2))
    calls = alert_calls(await run(jobs, store))
    assert len(calls) == 1
    assert "CRITICAL · Payment failures spiking" in calls[0]["text"] and "<!here>" in calls[0]["text"]
    open_rules = {r["rule"] for r in await store.deps.pool.fetch("SELECT rule FROM alerts WHERE resolved_at IS NULL")}
    assert {"payment_failures_critical", "payment_failures_warning"} <= open_rules  # recorded, not posted


async def test_one_message_updated_in_place_through_ack_and_resolve(store: Bot, jobs: AlertJobs,
                                                                    clock: FakeClock) -> None:
    """Fire posts once; Acknowledge (a signed button click) and resolution update that same message."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=1))
    posted = alert_calls(await run(jobs, store))[0]
    assert posted["method"] == "chat.postMessage" and "Payment failures" in posted["text"]
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    await click(store, "alert_ack", alert_id, user="UONCALL", ts=posted_ts(store))
    calls = await run(jobs, store)
    update = [c for c in calls if c["method"] == "chat.update"]
    assert len(update) == 1 and update[0]["ts"] == posted_ts(store)
    assert "Acknowledged by <@UONCALL>" in json.dumps(update[0]["blocks"])
    assert_valid_message(update[0])
    clock.advance(minutes=16)  # the failures age out of the 10-minute window, then it keeps firing for 15 min
    calls = await run(jobs, store)
    updates = [c for c in calls if c["method"] == "chat.update"]
    assert len(updates) == 2 and "Resolved after 16 min" in json.dumps(updates[1]["blocks"])
    assert not any(b["type"] == "actions" for b in updates[1]["blocks"])  # no buttons once resolved
    replies = [c for c in calls if c.get("thread_ts") == posted_ts(store)]
    assert [r["text"].split(" · ")[0] for r in replies] == ["👀 Acknowledged by <@UONCALL>",
                                                             "✅ Resolved after 16 min (since 14:00)"]
    assert len([c for c in calls if c["method"] == "chat.postMessage" and not c.get("thread_ts")]) == 1


def posted_ts(bot: Bot) -> str:
    """The ts Slack gave the first alert message."""
    return str(next(m["ts"] for m in bot.slack_api.messages if not m["thread_ts"]))


async def click(bot: Bot, action_id: str, alert_id: int, *, user: str, ts: str) -> None:
    """Click a button on the alert message, as Slack sends it: a signed block_actions payload."""
    payload = {"type": "block_actions", "user": {"id": user}, "channel": {"id": "C_ALERTS"}, "team": {"id": "T0"},
               "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2", "container": {"message_ts": ts},
               "response_url": bot.slack_api.url.replace("/api/", "/hooks/click"),
               "actions": [{"type": "button", "action_id": action_id, "block_id": f"alert-{alert_id}",
                            "value": str(alert_id), "action_ts": "1"}]}
    resp = await bot.slack({"payload": json.dumps(payload)})
    assert resp.status == 200
    for _ in range(250):  # Bolt runs the listener after the ack: wait until the click is recorded
        row = await bot.deps.pool.fetchrow("SELECT acknowledged_by, silenced_by, resolved_by FROM alerts"
                                           " WHERE id = $1", alert_id)
        if user in tuple(row):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{action_id} by {user} was not recorded")


async def test_reminders_in_the_thread_until_acknowledged(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Still firing after the repeat interval (4 h): one reply in the thread; none once acknowledged."""
    await store.deps.pool.execute("INSERT INTO app_events (kind, system, message, occurred_at, received_at)"
                                  " VALUES ('sync_failure', 'gohighlevel', 'timeout', $1, $1)", just_before(clock))
    await run(jobs, store)
    for hours in (1, 2, 3):
        clock.advance(hours=1)
        await store.deps.pool.execute(SYNC_AGAIN, just_before(clock))  # still failing
        assert [c for c in await run(jobs, store) if c.get("thread_ts")] == [], hours
    clock.advance(hours=1, minutes=1)
    await store.deps.pool.execute("UPDATE app_events SET occurred_at = $1, received_at = $1", just_before(clock))
    replies = [c for c in await run(jobs, store) if c.get("thread_ts")]
    assert len(replies) == 1 and "Still firing after 4 h 1 min" in replies[0]["text"]
    assert not replies[0].get("reply_broadcast") and "<!here>" not in replies[0]["text"]  # a warning: no page
    assert_valid_message(replies[0])
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    await click(store, "alert_ack", alert_id, user="U1", ts=posted_ts(store))
    clock.advance(hours=5)
    await store.deps.pool.execute("UPDATE app_events SET occurred_at = $1, received_at = $1", just_before(clock))
    thread = [c["text"].split(" · ")[0] for c in await run(jobs, store) if c.get("thread_ts")]  # every call so far
    assert thread == [replies[0]["text"], "👀 Acknowledged by <@U1>"]  # the ack is said once; no reminder after it


async def test_silence_mutes_reminders_and_expires_by_itself(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Silence 1 h updates the message; when it expires the message is updated back and reminders resume."""
    await store.deps.pool.execute("INSERT INTO app_events (kind, system, message, occurred_at, received_at)"
                                  " VALUES (\'sync_failure\', \'crm\', \'down\', $1, $1)", just_before(clock))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    await click(store, "alert_silence_1h", alert_id, user="U2", ts=posted_ts(store))
    calls = await run(jobs, store)
    assert "Silenced by <@U2> until Tue 15:00" in json.dumps([c for c in calls if c["method"] == "chat.update"])
    clock.advance(minutes=61)
    await store.deps.pool.execute("UPDATE app_events SET occurred_at = $1, received_at = $1", just_before(clock))
    calls = await run(jobs, store)
    updates = [c for c in calls if c["method"] == "chat.update"]
    assert len(updates) == 2 and "Firing for 1 h 1 min" in json.dumps(updates[-1]["blocks"])
    assert await store.deps.pool.fetchval("SELECT silenced_until FROM alerts") is None


async def test_silence_until_tomorrow_means_nine_local(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """'Silence until tomorrow 9:00' is 09:00 the next day in the store's time zone."""
    await failures(store, 3, just_before(clock))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    await click(store, "alert_silence_tomorrow", alert_id, user="U3", ts=posted_ts(store))
    until = await store.deps.pool.fetchval("SELECT silenced_until FROM alerts")
    assert until.astimezone(NY) == dt.datetime(2026, 6, 10, 9, 0, tzinfo=NY)


@pytest.mark.parametrize(("clicked", "ends"), [
    (dt.datetime(2026, 6, 9, 0, 30), dt.datetime(2026, 6, 9, 9, 0)),   # after midnight: the coming morning
    (dt.datetime(2026, 6, 9, 5, 59), dt.datetime(2026, 6, 9, 9, 0)),
    (dt.datetime(2026, 6, 9, 6, 0), dt.datetime(2026, 6, 10, 9, 0)),   # the day has begun: the next day's
    (dt.datetime(2026, 6, 9, 23, 50), dt.datetime(2026, 6, 10, 9, 0)),
    (dt.datetime(2026, 3, 8, 1, 30), dt.datetime(2026, 3, 8, 9, 0)),   # the night clocks spring forward
])
def test_silence_until_tomorrow_is_the_next_morning(clicked: dt.datetime, ends: dt.datetime) -> None:
    """Clicked in the small hours, 'tomorrow 9:00' is the morning a few hours away, not 32 h on."""
    until = silence_end(SILENCE_TOMORROW_ACTION, clicked.replace(tzinfo=NY).astimezone(dt.UTC), NY)
    assert until is not None and until.astimezone(NY) == ends.replace(tzinfo=NY)


async def test_resolve_button_closes_it_until_the_condition_clears(store: Bot, jobs: AlertJobs,
                                                                   clock: FakeClock) -> None:
    """Resolved by hand: no re-fire while the condition persists; a new alert once it cleared and came back."""
    await failures(store, 3, just_before(clock))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    await click(store, "alert_resolve", alert_id, user="U4", ts=posted_ts(store))
    calls = await run(jobs, store)
    assert "Resolved by <@U4>" in json.dumps([c for c in calls if c["method"] == "chat.update"])
    await run(jobs, store)
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alerts") == 1
    clock.advance(minutes=11)
    await run(jobs, store)  # cleared
    await failures(store, 3, just_before(clock))
    await run(jobs, store)
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alerts") == 2


async def test_warnings_are_held_outside_business_hours(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """A warning at 23:00 is posted at 09:00, unless it resolved before."""
    clock.now = dt.datetime(2026, 6, 9, 23, 0, tzinfo=NY).astimezone(dt.UTC)
    await store.deps.pool.execute("INSERT INTO app_events (kind, system, message, occurred_at, received_at)"
                                  " VALUES (\'sync_failure\', \'crm\', \'night\', $1, $1)", just_before(clock))
    assert alert_calls(await run(jobs, store)) == []
    clock.now = dt.datetime(2026, 6, 10, 9, 0, tzinfo=NY).astimezone(dt.UTC)
    await store.deps.pool.execute("UPDATE app_events SET occurred_at = $1, received_at = $1", just_before(clock))
    calls = alert_calls(await run(jobs, store))
    assert len(calls) == 1 and "Sync failures" in calls[0]["text"]


async def test_critical_fires_at_night(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Critical alerts ignore business hours."""
    clock.now = dt.datetime(2026, 6, 10, 3, 0, tzinfo=NY).astimezone(dt.UTC)
    await failures(store, 10, just_before(clock))
    assert len(alert_calls(await run(jobs, store))) == 1


async def test_no_sales_counts_business_hours_only(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Last order 20:00 the evening before: at 11:00 that is 3 business hours (no alert); at 12:05, 4.1."""
    last = dt.datetime(2026, 6, 8, 20, 0, tzinfo=NY).astimezone(dt.UTC)
    await store.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ('pi_last', 'completed', 1000, 'USD', $1, $1)", last)
    clock.now = dt.datetime(2026, 6, 9, 11, 0, tzinfo=NY).astimezone(dt.UTC)
    await run(jobs, store)
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alerts WHERE rule = 'no_sales'") == 0
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alerts WHERE rule = 'no_order_1h'") == 1
    clock.now = dt.datetime(2026, 6, 9, 12, 5, tzinfo=NY).astimezone(dt.UTC)
    calls = alert_calls(await run(jobs, store))
    assert len(calls) == 1 and "No sales for 4.1 business hours" in calls[0]["text"]


def test_business_time_spans_nights_and_dst() -> None:
    """Business time skips the nights; business hours clear of the change (9:00-21:00) count as on any day."""
    hours = HourWindow(dt.time(9), dt.time(21))
    start = dt.datetime(2026, 3, 7, 20, 0, tzinfo=NY)
    end = dt.datetime(2026, 3, 8, 10, 30, tzinfo=NY)  # the night of the spring-forward change
    assert business_time_between(start, end, tz=NY, hours=hours) == dt.timedelta(hours=2, minutes=30)


async def test_info_findings_are_recorded_not_posted(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """'No order for over an hour' is an info alert: stored for the daily report, never posted."""
    last = clock.now - dt.timedelta(minutes=90)
    await store.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ('pi_x', 'completed', 1000, 'USD', $1, $1)", last)
    assert alert_calls(await run(jobs, store)) == []
    assert await store.deps.pool.fetchval("SELECT severity FROM alerts") == "info"


async def test_restart_does_not_notify_again(dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> None:
    """A new process with the same database and a still-true condition sends nothing new."""
    for _ in range(2):
        async with start_bot(dsn, fake_slack, clock=clock) as bot:
            jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
            if not await bot.deps.pool.fetchval("SELECT count(*) FROM payment_failures"):
                await failures(bot, 3, just_before(clock))
            await run(jobs, bot)
            await jobs.leadership.release()
    assert len(alert_calls([{"method": c.method, **c.args} for c in fake_slack.calls])) == 1


async def test_two_evaluators_make_one_notification(dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> None:
    """Two replicas evaluating at once: only the leader evaluates; one message; the other takes over later."""
    async with start_bot(dsn, fake_slack, clock=clock) as a, start_bot(dsn, fake_slack, clock=clock) as b:
        ja, jb = AlertJobs(a.deps, leadership=Leadership(dsn)), AlertJobs(b.deps, leadership=Leadership(dsn))
        await failures(a, 3, just_before(clock))
        await asyncio.gather(ja.tick(), jb.tick(), ja.tick(), jb.tick())
        await a.drain(ignore_pace=True)
        assert len(alert_calls([{"method": c.method, **c.args} for c in fake_slack.calls])) == 1
        assert ja.leadership.was_leader != jb.leadership.was_leader
        leader, follower = (ja, jb) if ja.leadership.was_leader else (jb, ja)
        await leader.leadership.release()  # the leader dies: its session (and lock) are gone
        assert await follower.leadership.hold()
        await follower.leadership.release()


async def test_database_outage_is_posted_directly_and_resolved(store: Bot, jobs: AlertJobs,
                                                               clock: FakeClock) -> None:
    """With PostgreSQL gone, the alert goes straight to Slack after two failed checks; back → updated."""
    assert await jobs.leadership.hold()
    pool = store.deps.pool
    await pool.close()  # the database is unreachable for this process
    await jobs.tick()
    assert store.slack_api.posted() == []
    clock.advance(minutes=1)
    await jobs.tick()
    posts = store.slack_api.posted()
    assert len(posts) == 1 and "Database unreachable" in posts[0]["text"]
    assert_valid_message(posts[0])
    jobs.dbwatch.failures = 2
    clock.advance(minutes=4)
    await jobs.dbwatch.up(clock.now)
    updates = store.slack_api.posted("chat.update")
    assert len(updates) == 1 and "reachable again after 5 min" in updates[0]["text"]
    assert_valid_message(updates[0])
    assert jobs.dbwatch.incident is not None


async def test_site_probe_against_slow_and_failing_local_servers(dsn: str, fake_slack: FakeSlack,
                                                                 clock: FakeClock) -> None:
    """A 3.2 s answer raises 'Site slow'; three failing checks raise 'Site down'; /health shows the probe."""
    mode = {"delay": 3.2, "status": 200}

    async def site(_: web.Request) -> web.Response:
        await asyncio.sleep(mode["delay"])
        return web.Response(status=int(mode["status"]), text="shop")

    app = web.Application()
    app.router.add_get("/", site)
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # a started server has sockets
    try:
        async with start_bot(dsn, fake_slack, clock=clock, SITE_URL=f"http://127.0.0.1:{port}/") as bot, \
                __import__("aiohttp").ClientSession() as session:
            jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
            await jobs.probe_tick(session)
            calls = alert_calls(await run(jobs, bot))
            assert len(calls) == 1 and "Site slow" in calls[0]["text"]
            mode.update(delay=0, status=503)
            for _ in range(3):
                await jobs.probe_tick(session)
                clock.advance(minutes=1)
            calls = alert_calls(await run(jobs, bot))
            assert any("CRITICAL · Site down" in c["text"] for c in calls)
            assert "HTTP 503" in json.dumps(calls)
            health = await bot.command("/health")
            assert "HTTP 503" in json.dumps(health["blocks"]) and "Site down" in json.dumps(health["blocks"])
            await jobs.leadership.release()
    finally:
        await runner.cleanup()


async def test_errors_and_json_show_firing_alerts(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """/errors lists the firing alert; the errors JSON sets alertsTriggered from it."""
    await failures(store, 3, just_before(clock))
    await run(jobs, store)
    body = await store.command("/errors")
    assert "Firing alerts" in json.dumps(body["blocks"]) and "Payment failures" in json.dumps(body["blocks"])
    assert_valid_message(body)


async def test_incoming_webhook_mode_posts_firing_and_resolved_without_buttons(dsn: str, fake_slack: FakeSlack,
                                                                               clock: FakeClock) -> None:
    """Without a bot token: a firing post and a resolved post, no buttons, no updates."""
    hooks = fake_slack.url.replace("/api/", "/hooks/")
    async with start_bot(dsn, fake_slack, clock=clock, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None,
                         SLACK_ALERT_WEBHOOK_URL=hooks + "alerts") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        await failures(bot, 3, just_before(clock))
        await run(jobs, bot)
        clock.advance(minutes=16)  # out of the window, and past the 15 minutes it keeps firing for
        await run(jobs, bot)
        await jobs.leadership.release()
    posts = [c.args for c in fake_slack.calls if c.method == "hook:alerts"]
    assert len(posts) == 2
    assert "firing" in posts[0]["text"] and "resolved" in posts[1]["text"]
    assert not any(b["type"] == "actions" for p in posts for b in p["blocks"])



async def _rule_fires(bot: Bot, name: str, now: dt.datetime, *, rhythm_now: bool = False) -> bool:
    """Whether one rule's check at `now` would open an alert, with the store's rhythm as the alert job loads it when
    `rhythm_now`."""
    from bot.alerts.rules import DEFAULT_RULES, Context
    from bot.rhythm.load import load_rhythm

    rule = next(r for r in DEFAULT_RULES if r.name == name)
    async with bot.deps.pool.acquire() as conn:
        rhythm = await load_rhythm(conn, now=now, tz=NY) if rhythm_now else None
        ctx = Context(now=now, tz=NY, business_hours=bot.deps.settings.business_hours,
                      site_url="http://shop.test/", rhythm=rhythm)
        return rule.applies(rhythm) and any(f.opens for f in await rule.check(conn, rule, ctx))


async def _orders(bot: Bot, count: int, at: dt.datetime) -> None:
    await bot.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " SELECT 'pi_ok_' || g || '_' || $2, 'completed', 1000, 'USD', $1, $1 FROM generate_series(1, $3) AS g",
        at, str(at.timestamp()), count)


async def test_the_webhook_errors_alert_names_the_commonest_kinds(store: Bot, clock: FakeClock) -> None:
    """As the original guide's alert does: the three commonest event types with their count and newest error,
    on one line each clipped; the fourth is left out."""
    from bot.alerts.rules import DEFAULT_RULES, Context

    before = clock.now - dt.timedelta(minutes=5)
    for kind, count in (("invoice.paid", 4), ("charge.refunded", 3), ("payment_intent.succeeded", 2),
                        ("charge.dispute.created", 1)):
        await store.deps.pool.execute(
            "INSERT INTO webhook_logs (event_id, event_type, status, last_error, payload, created_at, updated_at)"
            " SELECT $1 || g, $1, 'error', 'ValueError: bad ' || $1 || ' #' || g || E'\\nsecond line', '{}',"
            " $3::timestamptz + g * interval '1 second', $3::timestamptz + g * interval '1 second'"
            " FROM generate_series(1, $2) AS g",
            kind, count, before)
    # Counted as the rate counts them, by when received: an old error retried now is neither counted nor named.
    await store.deps.pool.execute(
        "INSERT INTO webhook_logs (event_id, event_type, status, last_error, payload, created_at, updated_at)"
        " VALUES ('evt_old', 'charge.dispute.closed', 'error', 'old', '{}', $1, $2)",
        clock.now - dt.timedelta(days=1), before)
    rule = next(r for r in DEFAULT_RULES if r.name == "webhook_errors")
    ctx = Context(now=clock.now, tz=NY, business_hours=store.deps.settings.business_hours, site_url=None)
    async with store.deps.pool.acquire() as conn:
        [finding] = await rule.check(conn, rule, ctx)
    assert finding.summary == (
        "10 webhook errors in the last hour (100.0% of 10 webhooks) — invoice.paid ×4: ValueError: bad invoice.paid #4"
        " second line; charge.refunded ×3: ValueError: bad charge.refunded #3 second line;"
        " payment_intent.succeeded ×2: ValueError: bad payment_intent.succeeded #2 second line")
    # The store's app's errors count too, in the rate's numerator and denominator alike, and are named by the
    # component that reported them.
    await store.deps.pool.execute(
        "INSERT INTO app_events (source, kind, message, occurred_at, received_at)"
        " SELECT 'checkout-api', 'error', 'timeout #' || g, $1::timestamptz + g * interval '1 second',"
        "        $1::timestamptz + g * interval '1 second'"
        " FROM generate_series(1, 5) AS g", before)
    async with store.deps.pool.acquire() as conn:
        [finding] = await rule.check(conn, rule, ctx)
    assert finding.summary.startswith("15 errors in the last hour (100.0% of 15: 10 of 10 webhooks failed, 5 errors"
                                      " reported by the app) — app: checkout-api ×5: timeout #5; invoice.paid ×4:")


async def test_every_rule_fires_at_its_threshold_and_not_below(store: Bot, clock: FakeClock) -> None:
    """Just below each threshold nothing; at it, a finding: failures 9/10 and 2/3, rate 10 %/11 % of 100,
    webhook errors 1 %/2 % and 5/6, disputes 0/1, sync failures 0/1, site slow 3.0 s/3.1 s, site down 2/3."""
    now, before = clock.now, clock.now - dt.timedelta(minutes=2)
    await failures(store, 9, before)
    assert not await _rule_fires(store, "payment_failures_critical", now)
    assert await _rule_fires(store, "payment_failures_warning", now)
    await failures(store, 1, before - dt.timedelta(seconds=1))
    assert await _rule_fires(store, "payment_failures_critical", now)
    await store.deps.pool.execute("DELETE FROM payment_failures")
    await failures(store, 2, before)
    assert not await _rule_fires(store, "payment_failures_warning", now)
    # Rate: 10 failed of 100 attempts is not over 10 %; 11 of 100 is.
    await store.deps.pool.execute("DELETE FROM payment_failures")
    await failures(store, 10, before)
    await _orders(store, 90, before)
    assert not await _rule_fires(store, "payment_failure_rate", now)
    await store.deps.pool.execute("DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)")
    await failures(store, 1, before - dt.timedelta(seconds=2))
    assert await _rule_fires(store, "payment_failure_rate", now)
    # Webhook errors: 1 of 100 (1 %) is not over; 2 of 100 is. 5 errors of 1,000 is not "more than 5"; 6 is.
    await store.deps.pool.execute(
        "INSERT INTO webhook_logs (event_id, event_type, status, payload, created_at)"
        " SELECT 'evt_w' || g, 'invoice.paid', CASE WHEN g = 1 THEN 'error' ELSE 'processed' END, '{}', $1"
        "   FROM generate_series(1, 100) AS g", before)
    assert not await _rule_fires(store, "webhook_errors", now)
    await store.deps.pool.execute("UPDATE webhook_logs SET status = 'error' WHERE event_id = 'evt_w2'")
    assert await _rule_fires(store, "webhook_errors", now)
    await store.deps.pool.execute(
        "INSERT INTO webhook_logs (event_id, event_type, status, payload, created_at)"
        " SELECT 'evt_x' || g, 'invoice.paid', 'processed', '{}', $1 FROM generate_series(1, 900) AS g", before)
    await store.deps.pool.execute("UPDATE webhook_logs SET status = 'error' WHERE event_id IN"
                                  " ('evt_w3', 'evt_w4', 'evt_w5')")  # 5 errors of 1,000: 0.5 %
    assert not await _rule_fires(store, "webhook_errors", now)
    await store.deps.pool.execute("UPDATE webhook_logs SET status = 'error' WHERE event_id = 'evt_w6'")
    assert await _rule_fires(store, "webhook_errors", now)
    # Disputes and sync failures: none, then one.
    assert not await _rule_fires(store, "dispute_opened", now)
    await store.deps.pool.execute("INSERT INTO disputes (id, amount, currency, reason, created_at)"
                                  " VALUES ('dp_1', 1000, 'USD', 'fraudulent', $1)", before)
    assert await _rule_fires(store, "dispute_opened", now)
    assert not await _rule_fires(store, "sync_failures", now)
    await store.deps.pool.execute("INSERT INTO app_events (kind, system, message, occurred_at, received_at)"
                                  " VALUES (\'sync_failure\', \'crm\', \'x\', $1, $1)", before)
    assert await _rule_fires(store, "sync_failures", now)
    # Site: a 3.0 s answer is not over 3 s, 3.1 s is; two failed checks are not three.
    probe = ("INSERT INTO site_probes (url, checked_at, ok, status, elapsed_ms, error)"
             " VALUES ('http://shop.test/', $1, $2, $3, $4, $5)")
    await store.deps.pool.execute(probe, before, True, 200, 3000.0, None)
    assert not await _rule_fires(store, "site_slow", now)
    await store.deps.pool.execute(probe, before + dt.timedelta(seconds=1), True, 200, 3100.0, None)
    assert await _rule_fires(store, "site_slow", now)
    for n in range(2):
        await store.deps.pool.execute(probe, before + dt.timedelta(seconds=2 + n), False, 503, 10.0, "HTTP 503")
    assert not await _rule_fires(store, "site_down", now)
    await store.deps.pool.execute(probe, before + dt.timedelta(seconds=5), False, None, 10000.0, "no answer")
    assert await _rule_fires(store, "site_down", now)


async def _history(bot: Bot, *, until: dt.date, weeks: int, per_hour: dict[int, int]) -> None:
    """`weeks` whole weeks of completed orders before `until`, evenly spread: per_hour[h] in local hour h."""
    times = [dt.datetime.combine(until - dt.timedelta(days=d), dt.time(h), tzinfo=NY) + dt.timedelta(hours=i / n)
             for d in range(1, 7 * weeks + 1) for h, n in per_hour.items() for i in range(n)]
    await bot.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " SELECT 'pi_hist_' || g, 'completed', 2500, 'USD', t, t FROM unnest($1::timestamptz[]) WITH ORDINALITY"
        " AS x(t, g)", times)


PEAK = {h: 30 if h == 14 else 4 for h in range(8, 22)} | {h: 0 for h in (0, 1, 2, 3, 4, 5, 6, 7, 22, 23)}


async def test_sales_stopped_fires_at_peak_not_in_a_quiet_hour(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Eight weeks at 30 sales an hour at 14:00: 12 minutes without a sale is nothing yet, 18 minutes (9 expected
    sales) pages as "Sales stopped" (critical, in plain words); at 09:00 (4 an hour) a long silence is no alert."""
    await _history(store, until=NOON.astimezone(NY).date(), weeks=8, per_hour=PEAK)
    await _orders(store, 24, clock.now - dt.timedelta(hours=3))  # a usual morning: not "unusually low"
    await _orders(store, 1, clock.now)
    clock.advance(minutes=12)
    assert alert_calls(await run(jobs, store)) == []
    clock.advance(minutes=6)
    calls = alert_calls(await run(jobs, store))
    assert len(calls) == 1 and "CRITICAL · Sales stopped" in calls[0]["text"]
    assert "No sale for 18 min; at this hour a sale usually comes every 2 min" in json.dumps(calls[0]["blocks"])
    assert_valid_message(calls[0])
    quiet = dt.datetime.combine(NOON.astimezone(NY).date() + dt.timedelta(days=1), dt.time(9, 16), tzinfo=NY)
    assert not await _rule_fires(store, "sales_stopped", quiet.astimezone(dt.UTC), rhythm_now=True)


async def test_sales_stopped_stays_open_past_its_hour_until_a_sale_comes(store: Bot, jobs: AlertJobs,
                                                                          clock: FakeClock) -> None:
    """Fired at the 14:00 peak, "Sales stopped" is not resolved when 15:00 (no longer watched) comes without a
    sale — that would read as "sales are back" — but once a sale comes."""
    await _history(store, until=NOON.astimezone(NY).date(), weeks=8, per_hour=PEAK)
    await _orders(store, 24, clock.now - dt.timedelta(hours=3))
    await _orders(store, 1, clock.now)
    clock.advance(minutes=18)
    [fired] = alert_calls(await run(jobs, store))
    assert "CRITICAL · Sales stopped" in fired["text"]
    clock.advance(minutes=50)  # 15:08: an hour it does not watch
    assert alert_calls(await run(jobs, store)) == [fired]
    assert await store.deps.pool.fetchval(
        "SELECT count(*) FROM alerts WHERE rule = 'sales_stopped' AND resolved_at IS NULL") == 1
    await _orders(store, 1, clock.now)
    clock.advance(minutes=1)
    after = [c for c in alert_calls(await run(jobs, store))[1:] if "unusually low" not in c["text"]]
    assert [(c["method"], c["text"][:40]) for c in after] == [
        ("chat.update", "✅ CRITICAL · Sales stopped — No sale for"),
        ("chat.postMessage", "✅ Resolved after 51 min (since 14:18)")]


async def test_the_rhythm_is_built_once_an_hour_and_again_in_the_next(store: Bot, clock: FakeClock) -> None:
    """/sales, Home and the alert job share one rhythm per local hour: history written within the hour is not
    read again (no rebuild per request); the next hour, or other [rhythm] parameters, rebuild it."""
    from bot.rhythm.load import RhythmCache
    from bot.rhythm.model import RhythmParams

    cache = RhythmCache()
    async with store.deps.pool.acquire() as conn:
        assert await cache.get(conn, now=clock.now, tz=NY) is None  # no history yet
        await _history(store, until=NOON.astimezone(NY).date(), weeks=8, per_hour=PEAK)
        assert await cache.get(conn, now=clock.now + dt.timedelta(minutes=30), tz=NY) is None and cache.hits == 1
        rebuilt = await cache.get(conn, now=clock.now + dt.timedelta(hours=1), tz=NY)
        assert rebuilt is not None and rebuilt.currency == "USD"
        assert await cache.get(conn, now=clock.now + dt.timedelta(hours=1, minutes=5), tz=NY) is rebuilt
        other = await cache.get(conn, now=clock.now + dt.timedelta(hours=1), tz=NY, params=RhythmParams(weeks=4))
        assert other is not None and other is not rebuilt and cache.hits == 2


async def test_sales_low_today_and_the_fixed_rules_with_a_rhythm(store: Bot, clock: FakeClock) -> None:
    """With a rhythm, a day at a sixth of usual by 14:00 is "unusually low" and a usual one is not; the fixed
    no_sales rule stands aside; with under two weeks of history it is the other way round."""
    day = NOON.astimezone(NY).date()
    await _history(store, until=day, weeks=1, per_hour=PEAK)
    assert not await _rule_fires(store, "sales_low_today", clock.now, rhythm_now=True)  # one week: no rhythm
    await _history_older(store, until=day, weeks=8)
    morning = dt.datetime.combine(day, dt.time(8), tzinfo=NY).astimezone(dt.UTC)
    await _orders(store, 4, morning)  # a usual day has 4 × 6 = 24 by 14:00
    assert await _rule_fires(store, "sales_low_today", clock.now, rhythm_now=True)
    await _orders(store, 16, morning + dt.timedelta(minutes=1))
    assert not await _rule_fires(store, "sales_low_today", clock.now, rhythm_now=True)
    later = clock.now + dt.timedelta(hours=5)
    assert await _rule_fires(store, "no_sales", later) and not await _rule_fires(store, "no_sales", later,
                                                                               rhythm_now=True)


async def _history_older(bot: Bot, *, until: dt.date, weeks: int) -> None:
    """Weeks 2..`weeks` before `until` at PEAK (week 1 is already there)."""
    times = [dt.datetime.combine(until - dt.timedelta(days=d), dt.time(h), tzinfo=NY) + dt.timedelta(hours=i / n)
             for d in range(8, 7 * weeks + 1) for h, n in PEAK.items() for i in range(n)]
    await bot.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " SELECT 'pi_old_' || g, 'completed', 2500, 'USD', t, t FROM unnest($1::timestamptz[]) WITH ORDINALITY"
        " AS x(t, g)", times)


async def test_failure_rate_needs_five_failures_and_more_than_ten_percent(store: Bot, clock: FakeClock) -> None:
    """4 of 20 attempts failed (20 %): under the minimum count; 5 of 50 (10 %): not over; 6 of 51: fires."""
    before = clock.now - dt.timedelta(minutes=2)
    await failures(store, 4, before)
    await _orders(store, 16, before)
    assert not await _rule_fires(store, "payment_failure_rate", clock.now)
    await failures(store, 1, before - dt.timedelta(seconds=1))
    await _orders(store, 29, before - dt.timedelta(seconds=1))
    assert not await _rule_fires(store, "payment_failure_rate", clock.now)
    await failures(store, 1, before - dt.timedelta(seconds=2))
    assert await _rule_fires(store, "payment_failure_rate", clock.now)


async def test_rhythm_history_reads_local_hours_across_dst(db: Any) -> None:
    """The rollup history groups by the store's local day and hour: the fall-back night's two 01:00 hours in one."""
    from queries.rhythm import hourly_history

    fall = dt.date(2026, 11, 1)
    first = dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)  # 01:30 EDT
    await db.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ('pi_a', 'completed', 100, 'USD', $1, $1), ('pi_b', 'completed', 200, 'USD', $2, $2)",
        first, first + dt.timedelta(hours=1))  # 01:30 EST
    rows = await hourly_history(db, start=dt.datetime.combine(fall, dt.time(0), tzinfo=NY),
                                end=dt.datetime.combine(fall, dt.time(23), tzinfo=NY), tz="America/New_York")
    assert [(r.day, r.hour, r.orders, r.revenue) for r in rows] == [(fall, 1, 2, 300)]


async def test_sales_today_shows_the_pace_once_there_is_a_rhythm(store: Bot, clock: FakeClock) -> None:
    """/sales today gains "On pace for …" against a usual Tuesday (valid Block Kit); without history, no line."""
    from bot.answers.snapshots import sales_snapshot
    from bot.blocks.sales import sales_message
    from bot.periods import parse_period

    async def answer() -> str:
        snap = await sales_snapshot(store.deps.pool, period=parse_period("", now=clock.now, tz=NY), now=clock.now,
                                    tz=NY)
        msg = sales_message(snap, tz=NY)
        assert_valid_message(msg)
        return json.dumps(msg.blocks, ensure_ascii=False)

    assert "On pace" not in await answer()
    await _history(store, until=NOON.astimezone(NY).date(), weeks=8, per_hour=PEAK)
    await _orders(store, 24, clock.now - dt.timedelta(hours=3))  # the usual count by 14:00 ($10 each, not $25)
    assert "On pace for *$" in await answer() and "a usual Tuesday is $2,050.00" in await answer()
