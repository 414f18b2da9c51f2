"""Settings from Slack in force: on a second replica within a second, on the rules, the report jobs, the channels
and the access lists; quiet hours and business days as the alert pipeline reads them."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from bot.alerts.engine import Kind, route
from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from bot.alerts.rules import Context, RuleSet, business_time_between
from bot.blocks import settings as view
from bot.config import HourWindow
from bot.reports.schedule import DailyAt, ReportKind, job_id
from bot.settings.values import effective
from queries.alerts import AlertRow
from tests.blockkit import assert_valid_modal
from tests.conftest import Bot, FakeClock, make_settings, start_bot
from tests.fakes import FakeSlack
from tests.settings_forms import ADMIN, OTHER, command, open_settings, put, state_of, submit

NY = ZoneInfo("America/New_York")
TUESDAY_2PM = dt.datetime(2026, 6, 9, 14, 0, tzinfo=NY).astimezone(dt.UTC)


@pytest.fixture
async def bot(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with one admin."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as running_bot:
        yield running_bot


async def until(predicate: object, *, within: float, since: float | None = None) -> float:
    """Poll `predicate()` every 5 ms; the seconds it took to hold, from `since` (a perf_counter reading) or
    now (AssertionError after `within`)."""
    started = time.perf_counter() if since is None else since
    while not predicate():  # type: ignore[operator]  # a zero-argument callable
        assert time.perf_counter() - started < within, f"not in force within {within} s"
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def test_change_through_one_replica_is_in_force_on_another_within_a_second(dsn: str,
                                                                                 fake_slack: FakeSlack) -> None:
    """Two bots on one database: a change saved through the first is read by the second in under a second."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as a, \
            start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as b:
        await until(lambda: b.deps.live.listener is not None and b.deps.live.listener.listening.is_set(), within=5)
        state = state_of(await open_settings(a))
        put(state, view.HOURS_START, selected_time="07:30")
        put(state, view.severity_block("site_slow"), selected_option={"value": "off"})
        assert b.deps.settings.business_hours.start == dt.time(9)
        clicked = time.perf_counter()  # from the click on Save: submission, commit, NOTIFY, reload
        assert await submit(a, state) == (200, {})
        took = await until(lambda: b.deps.settings.business_hours.start == dt.time(7, 30), within=1.0, since=clicked)
        assert not next(r for r in b.deps.rules.rules if r.name == "site_slow").enabled
        assert b.deps.access.settings.business_hours.start == dt.time(7, 30)
        print(f"in force on the second replica after {took * 1000:.0f} ms")


async def test_stored_settings_are_in_force_from_start_up(dsn: str, fake_slack: FakeSlack) -> None:
    """A bot started after a change begins with it: stored values win over the environment."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as a:
        state = state_of(await open_settings(a))
        put(state, view.TZ, value="Asia/Tokyo")
        await submit(a, state)
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN, STORE_TIMEZONE="UTC") as b:
        assert b.deps.settings.store_timezone == "Asia/Tokyo" and b.deps.live.env.store_timezone == "UTC"
        assert b.deps.worker.tz == ZoneInfo("Asia/Tokyo")


async def test_a_rule_turned_off_stops_firing(dsn: str, fake_slack: FakeSlack) -> None:
    """Three failed payments fire the warning; with the rule set to Off from Slack, the same three do not."""
    clock = FakeClock(TUESDAY_2PM)
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SALESPULSE_ADMINS=ADMIN) as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            state = state_of(await open_settings(bot))
            put(state, view.severity_block("payment_failures_warning"), selected_option={"value": "off"})
            assert await submit(bot, state) == (200, {})
            for n in range(3):
                await bot.deps.pool.execute(
                    "INSERT INTO payment_failures (event_id, amount, currency, reason, created_at)"
                    " VALUES ($1, 1000, 'USD', 'card_declined', $2)", f"evt_f_{n}", clock.now - dt.timedelta(minutes=1))
            await jobs.tick()
            assert await bot.deps.pool.fetchval("SELECT count(*) FROM alerts") == 0
            state = state_of(await open_settings(bot))  # a saved view closes: turned back on from a new one
            put(state, view.severity_block("payment_failures_warning"), selected_option={"value": "warning"})
            put(state, view.threshold_block("payment_failures_warning"), value="3")
            assert await submit(bot, state) == (200, {})
            await jobs.tick()
            assert await bot.deps.pool.fetchval("SELECT rule FROM alerts") == "payment_failures_warning"
        finally:
            await jobs.leadership.release()


async def test_quiet_hours_post_criticals_without_paging(dsn: str, fake_slack: FakeSlack) -> None:
    """At 23:00 inside QUIET_HOURS 22:00-07:00, ten failed payments post the critical alert without <!here>."""
    clock = FakeClock(dt.datetime(2026, 6, 9, 23, 0, tzinfo=NY).astimezone(dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         QUIET_HOURS="22:00-07:00", BUSINESS_HOURS="00:00-23:59") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            for n in range(10):
                await bot.deps.pool.execute(
                    "INSERT INTO payment_failures (event_id, amount, currency, reason, created_at)"
                    " VALUES ($1, 1000, 'USD', 'card_declined', $2)", f"evt_q_{n}", clock.now - dt.timedelta(minutes=1))
            await jobs.tick()
            await bot.drain(ignore_pace=True)
        finally:
            await jobs.leadership.release()
        [critical] = [m for m in bot.slack_api.posted() if "CRITICAL" in (m.get("text") or "")]
        assert "<!here>" not in critical["text"] and "<!here>" not in str(critical["blocks"])


async def test_report_time_change_moves_the_report_job(bot: Bot) -> None:
    """Evening report 18:00 → 19:15 and the zone to Paris: the daily job's trigger follows at once."""
    scheduler = bot.deps.scheduler
    assert scheduler is not None
    for kind in ReportKind:
        scheduler.add_job(asyncio.sleep, DailyAt(dt.time(9), bot.deps.settings.tz), args=[0], id=job_id(kind))
    state = state_of(await open_settings(bot))
    put(state, view.EVENING, selected_time="19:15")
    put(state, view.TZ, value="Europe/Paris")
    assert await submit(bot, state) == (200, {})
    trigger = scheduler.get_job(job_id(ReportKind.EVENING)).trigger
    assert (trigger.at, trigger.tz) == (dt.time(19, 15), ZoneInfo("Europe/Paris"))
    assert scheduler.get_job(job_id(ReportKind.MORNING)).trigger.at == dt.time(9)


async def test_channel_and_reader_changes_apply_to_the_next_message_and_command(bot: Bot) -> None:
    """Sales channel → another channel: the next sale ping goes there; readers → one person: others are refused."""
    bot.slack_api.add_channel("C0NEWSALES", "shop-sales", member=True)
    state = state_of(await open_settings(bot))
    put(state, view.channel_block("sales"), selected_conversation="C0NEWSALES")
    put(state, view.READERS, selected_users=[ADMIN])
    assert await submit(bot, state) == (200, {})
    await bot.deps.sender.post("sales", {"text": "a sale", "blocks": []})
    assert bot.slack_api.posted()[-1]["channel"] == "C0NEWSALES"
    refused = await command(bot, "/sales", "", user=OTHER)
    assert "only available to the people" in refused["text"]
    allowed = await command(bot, "/sales", "", user=ADMIN)
    assert "only available" not in allowed["text"]
    put(state, view.QUIET_START, selected_time="22:00")
    put(state, view.QUIET_END, selected_time="06:30")
    put(state, view.RESPONDERS, selected_users=[ADMIN, OTHER])
    assert await submit(bot, state) == (200, {})
    reopened = await open_settings(bot)  # every field now has a value of its own: still a valid view
    assert_valid_modal(reopened)
    shown = state_of(reopened)
    assert shown[view.channel_block("sales")]["value"]["selected_conversation"] == "C0NEWSALES"
    assert shown[view.RESPONDERS]["value"]["selected_users"] == [ADMIN, OTHER]
    assert shown[view.QUIET_END]["value"]["selected_time"] == "06:30"


def _alert(severity: str, *, notified: bool = False) -> AlertRow:
    now = TUESDAY_2PM
    return AlertRow(id=1, fingerprint="r", rule="r", family=severity, severity=severity, labels={}, title="t",
                    summary="s", value=None, started_at=now, last_seen_at=now, resolved_at=None, resolved_by=None,
                    rearm_required=False,
                    notified_at=now if notified else None, last_reminder_at=None, acknowledged_by=None,
                    acknowledged_at=None, silenced_until=None, silenced_by=None, message_outbox_id=None)


def test_quiet_hours_hold_warnings_and_let_criticals_through() -> None:
    """Inside quiet hours a new warning waits and a critical fires; outside them both fire."""
    alerts = [_alert("warning"), _alert("critical")]
    quiet = route(alerts, now=TUESDAY_2PM, in_business_hours=True, repeat=dt.timedelta(hours=4), quiet=True)
    assert [(d.alert.severity, d.kind) for d in quiet] == [("critical", Kind.FIRE)]
    loud = route(alerts, now=TUESDAY_2PM, in_business_hours=True, repeat=dt.timedelta(hours=4))
    assert len(loud) == 2


def test_business_days_close_the_weekend() -> None:
    """BUSINESS_DAYS=Mon-Fri: Saturday 14:00 is outside business hours and its hours count for nothing; the hours
    after midnight of an evening window belong to the day it opened."""
    s = make_settings(BUSINESS_DAYS="Mon-Fri", QUIET_HOURS="22:00-07:00", STORE_TIMEZONE="America/New_York")
    saturday = dt.datetime(2026, 6, 13, 14, 0, tzinfo=NY)
    assert not s.in_business_hours(saturday) and s.in_business_hours(saturday - dt.timedelta(days=4))
    assert s.in_quiet_hours(saturday.replace(hour=23)) and not s.in_quiet_hours(saturday)
    ctx = Context(now=saturday, tz=NY, business_hours=s.business_hours, site_url=None,
                  business_days=s.business_days)
    assert not ctx.business_day() and not ctx.in_business_hours()
    friday_close = dt.datetime(2026, 6, 12, 21, 0, tzinfo=NY)
    monday_ten = dt.datetime(2026, 6, 15, 10, 0, tzinfo=NY)
    late = make_settings(BUSINESS_HOURS="18:00-02:00", BUSINESS_DAYS="Fri", STORE_TIMEZONE="America/New_York")
    assert late.in_business_hours(saturday.replace(hour=1)) and not late.in_business_hours(saturday.replace(hour=19))
    assert business_time_between(friday_close, monday_ten, tz=NY, hours=HourWindow(dt.time(9), dt.time(21)),
                                 days=s.business_days) == dt.timedelta(hours=1)


async def test_settings_listener_reconnects_and_catches_up(bot: Bot) -> None:
    """The settings listener's backend is killed; a change committed meanwhile is in force once it reconnects."""
    live = bot.deps.live
    await until(lambda: live.listener is not None and live.listener.listening.is_set(), within=5)
    assert live.listener is not None
    await bot.deps.pool.execute("SELECT pg_terminate_backend($1)", live.listener.pid)
    await until(lambda: live.listener is not None and not live.listener.listening.is_set(), within=5)
    await bot.deps.pool.execute("INSERT INTO settings_overrides (key, value, updated_by, updated_at)"
                                " VALUES ('MORNING_REPORT_AT', '\"07:45\"', $1, now())", ADMIN)
    await until(lambda: bot.deps.settings.morning_report_at == dt.time(7, 45), within=5)


def test_unusable_stored_values_leave_the_default() -> None:
    """A stored zone that no longer exists, a malformed window or rule, an unknown key: the default stands."""
    env = make_settings(STORE_TIMEZONE="Europe/Paris")
    settings, rules = effective(env, RuleSet(), {
        "STORE_TIMEZONE": "Gone/Zone", "BUSINESS_HOURS": "9-5", "NOT_A_SETTING": 1,
        "rule:site_down": {"severity": "loud"}, "rule:site_slow": {"enabled": False, "threshold": 7},
        "EVENING_REPORT_AT": "20:30"})
    assert settings.store_timezone == "Europe/Paris" and str(settings.business_hours) == "09:00-21:00"
    assert settings.evening_report_at == dt.time(20, 30)
    by_name = {r.name: r for r in rules.rules}
    assert by_name["site_down"] == next(r for r in RuleSet().rules if r.name == "site_down")
    assert not by_name["site_slow"].enabled and by_name["site_slow"].threshold == 7
