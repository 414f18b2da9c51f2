"""Settings review: a report time made wrong by another admin's change is refused on its field, the environment's
channel picked again is the environment's again, a rule's severity alone does not freeze its threshold, a report
moved into the past today goes out at once — and report moves and two replicas saving at once stay right."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.blocks import settings as view
from handlers.scheduled.reports import register
from tests.conftest import Bot, FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.report_seed import at
from tests.settings_forms import ADMIN, open_settings, put, state_of, submit
from tests.test_report_schedule_fixes import tick
from tests.test_settings_fixes import ADMIN2, bot  # noqa: F401  # fixture: the bot with two admins


async def test_stale_modal_report_time_save_is_told_not_silently_dropped(bot: Bot) -> None:  # noqa: F811  # fixture
    """Admin A opens Settings (morning 09:00, evening 18:00). Admin B moves the evening report to 12:00.
    A, still on the old modal, moves the morning report to 15:00 (valid against the 18:00 A sees) and saves.
    Stored as it is, the pair would be out of order and both times dropped for the environment's: A is refused
    on the field instead, told the evening time and who set it, and nothing is stored."""
    first = state_of(await open_settings(bot, user=ADMIN))
    second = state_of(await open_settings(bot, user=ADMIN2))
    put(second, view.EVENING, selected_time="12:00")
    assert await submit(bot, second, user=ADMIN2) == (200, {})
    assert (bot.deps.settings.morning_report_at, bot.deps.settings.evening_report_at) == (dt.time(9), dt.time(12))
    put(first, view.MORNING, selected_time="15:00")
    status, body = await submit(bot, first, user=ADMIN)
    in_force = (bot.deps.settings.morning_report_at, bot.deps.settings.evening_report_at)
    # Either A is refused on a field (nothing stored), or what A saved is what runs.
    assert body.get("response_action") == "errors" or in_force == (dt.time(15), dt.time(12)), (
        f"save answered {status} {body}; report times in force now {in_force}")
    assert body["errors"] == {view.MORNING: f"Evening report is now 12:00 (changed by <@{ADMIN2}>): pick a morning"
                                            " time before it."}
    assert in_force == (dt.time(9), dt.time(12))
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM settings_audit WHERE user_id = $1", ADMIN) == 0


async def test_picking_the_environments_channel_again_gives_the_channel_back_to_the_environment(
        dsn: str, fake_slack: FakeSlack) -> None:
    """SLACK_SALES_CHANNEL=#sales-notifications. An admin moves sales pings to #shop-sales, then back to
    #sales-notifications (the only way the modal offers: pick it in the conversation picker). README: "Saving a
    value equal to the default removes the stored one, so the environment is in charge again": when the operator
    later sets SLACK_SALES_CHANNEL to another channel and restarts, pings go there."""
    fake_slack.add_channel("C0NEWSALES", "shop-sales", member=True)
    fake_slack.add_channel("C0LATER", "sales-2027", member=True)
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as store:
        opened = await open_settings(store)
        state = state_of(opened)
        env_channel = state[view.channel_block("sales")]["value"]["selected_conversation"]
        assert env_channel == "C0SALES"
        put(state, view.channel_block("sales"), selected_conversation="C0NEWSALES")
        assert await submit(store, state) == (200, {})
        state = state_of(await open_settings(store))
        put(state, view.channel_block("sales"), selected_conversation=env_channel)  # back to the environment's
        assert await submit(store, state) == (200, {})
        left = await store.deps.pool.fetch("SELECT key, value FROM settings_overrides")
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN, SLACK_SALES_CHANNEL="#sales-2027") as later:
        in_force = later.deps.settings.slack_sales_channel
    assert ([tuple(r) for r in left], in_force) == ([], "#sales-2027")


async def test_changing_a_rules_severity_does_not_freeze_its_threshold_from_the_rules_file(
        dsn: str, fake_slack: FakeSlack, tmp_path: Path) -> None:
    """ALERT_RULES_FILE sets the payment-failures warning threshold to 5. An admin only changes that rule's
    severity to critical in Settings: only the severity is stored, so when the operator later raises the
    threshold in the rules file to 8 and restarts, 8 is in force (with the admin's severity)."""
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.payment_failures_warning]\nthreshold = 5\n")
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN, ALERT_RULES_FILE=str(rules)) as store:
        state = state_of(await open_settings(store))
        put(state, view.severity_block("payment_failures_warning"), selected_option={"value": "critical"})
        assert await submit(store, state) == (200, {})
        stored = await store.deps.pool.fetchval("SELECT value FROM settings_overrides"
                                              " WHERE key = 'rule:payment_failures_warning'")
        assert stored == {"severity": "critical"}
    rules.write_text("[rules.payment_failures_warning]\nthreshold = 8\n")
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN, ALERT_RULES_FILE=str(rules)) as store:
        rule = next(r for r in store.deps.rules.rules if r.name == "payment_failures_warning")
        assert (rule.severity.value, rule.threshold) == ("critical", 8)


async def test_a_report_time_moved_into_the_past_today_is_sent_at_once(dsn: str, fake_slack: FakeSlack) -> None:
    """README: moving a report earlier "to a time already past today, sends that day's report at once". It is 14:xx
    in the store's zone, the evening report (18:00) not sent yet, the start-up catch-up run still waiting for the
    morning report's delivery; the admin moves the evening report to 12:00: it is sent within seconds, not at the
    catch-up job's next 5-minute tick."""
    now = dt.datetime.now(dt.UTC)
    offset = 14 - now.hour  # a fixed zone where it is now 14:xx
    offset = (offset + 12) % 24 - 12
    zone = "Etc/GMT" + (f"{-offset:+d}" if offset else "")
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN, STORE_TIMEZONE=zone) as store:
        assert store.deps.scheduler is not None
        register(store.deps.scheduler, store.deps)
        await asyncio.sleep(2)  # the catch-up run at start-up (the morning report, due at 09:00)
        assert store.deps.clock().astimezone(store.deps.settings.tz).hour == 14
        state = state_of(await open_settings(store))
        put(state, view.EVENING, selected_time="12:00")
        assert await submit(store, state) == (200, {})
        await asyncio.sleep(3)
        kinds = [r["kind"] for r in await store.deps.pool.fetch("SELECT kind FROM reports")]
        jobs = {j.id: j.next_run_time - dt.datetime.now(dt.UTC) for j in store.deps.scheduler.get_jobs()
                if j.id.startswith("report")}
        assert "evening" in kinds, f"reports recorded: {kinds}; report jobs next run in {jobs}"


async def test_a_report_time_moved_later_after_the_report_went_out_is_not_sent_twice(
        dsn: str, fake_slack: FakeSlack) -> None:
    """Evening report sent at 18:00; at 18:30 the admin moves it to 20:00, then the zone an hour west: no second
    evening report that day; the next day's goes out once at 20:00."""
    ny = ZoneInfo("America/New_York")
    clock = FakeClock(at(ny, 2026, 6, 9, 17, 0, 30))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SALESPULSE_ADMINS=ADMIN) as store:
        done = await tick(store, clock, at(ny, 2026, 6, 9, 18, 30))
        assert [d[:2] for d in done if d[0] == "evening"] == [("evening", dt.date(2026, 6, 9))]
        state = state_of(await open_settings(store))
        put(state, view.EVENING, selected_time="20:00")
        assert await submit(store, state) == (200, {})
        state = state_of(await open_settings(store))
        put(state, view.TZ, value="America/Chicago")
        assert await submit(store, state) == (200, {})
        done = await tick(store, clock, at(ny, 2026, 6, 10, 22, 0))
        assert [d[:3] for d in done] == [("morning", dt.date(2026, 6, 10), "sent"),
                                          ("evening", dt.date(2026, 6, 10), "sent")]


async def test_two_admins_on_two_replicas_saving_at_once(dsn: str, fake_slack: FakeSlack) -> None:
    """Same instant, two replicas: different fields both land; the same field: one wins, the other is told."""
    admins = f"{ADMIN},{ADMIN2}"
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=admins) as a, \
            start_bot(dsn, fake_slack, SALESPULSE_ADMINS=admins) as b:
        s1, s2 = state_of(await open_settings(a, user=ADMIN)), state_of(await open_settings(b, user=ADMIN2))
        put(s1, view.TZ, value="Europe/Paris")
        put(s2, view.HOURS_START, selected_time="08:00")
        r = await asyncio.gather(submit(a, s1, user=ADMIN), submit(b, s2, user=ADMIN2))
        assert r == [(200, {}), (200, {})]
        await asyncio.sleep(0.5)
        for replica in (a, b):
            assert (replica.deps.settings.store_timezone, replica.deps.settings.business_hours.start) == (
                "Europe/Paris", dt.time(8))
        s1, s2 = state_of(await open_settings(a, user=ADMIN)), state_of(await open_settings(b, user=ADMIN2))
        put(s1, view.QUIET_START, selected_time="22:00")
        put(s1, view.QUIET_END, selected_time="06:00")
        put(s2, view.QUIET_START, selected_time="23:00")
        put(s2, view.QUIET_END, selected_time="07:00")
        r = await asyncio.gather(submit(a, s1, user=ADMIN), submit(b, s2, user=ADMIN2))
        assert sorted(bool(x[1]) for x in r) == [False, True], r
        told = next(x[1] for x in r if x[1])
        assert told["response_action"] == "errors" and "since you opened" in next(iter(told["errors"].values()))
        assert await a.deps.pool.fetchval("SELECT count(*) FROM settings_audit WHERE key='QUIET_HOURS'") == 1
