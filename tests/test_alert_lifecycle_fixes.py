"""The alert lifecycle outside the rules' own hours and across Settings changes: an open alert resolves when its
condition clears whatever the hour or day, follows its rule's severity and its rule being turned off, stays
unposted while silenced, and a database outage is recorded whichever replica leads once it is back."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from bot.alerts.engine import active_rules, evaluate
from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from bot.alerts.respond import notifier_for
from bot.alerts.rules import Context, RuleSet
from bot.config import HourWindow
from bot.home.render import render_home
from queries import settings as stored
from tests import test_alerts
from tests.conftest import Bot, FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.test_alerts import NOON, NY, alert_calls, just_before, posted_ts, run

clock, store, jobs = test_alerts.clock, test_alerts.store, test_alerts.jobs  # a New York store, Tuesday 14:00

OPEN = "SELECT count(*) FROM alerts WHERE rule = $1 AND resolved_at IS NULL"


def _ny(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A June 2026 day and time in New York, as UTC (the 9th is a Tuesday, the 12th a Friday)."""
    return dt.datetime(2026, 6, day, hour, minute, tzinfo=NY).astimezone(dt.UTC)


async def _order(bot: Bot, order_id: str, at: dt.datetime) -> None:
    """A completed order at `at`."""
    await bot.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ($1, 'completed', 1000, 'USD', $2, $2)", order_id, at)


async def _sync_failing(bot: Bot, clock: FakeClock) -> None:
    """The store's CRM sync fails a moment ago (again)."""
    await bot.deps.pool.execute("DELETE FROM app_events WHERE kind = 'sync_failure'")
    await bot.deps.pool.execute("INSERT INTO app_events (kind, system, message, occurred_at, received_at)"
                                " VALUES (\'sync_failure\', \'crm\', \'down\', $1, $1)", just_before(clock))


async def _new_calls(bot: Bot, jobs: AlertJobs) -> list[dict[str, Any]]:
    """Evaluate once and deliver; the Slack calls this made."""
    before = len(bot.slack_api.calls)
    await run(jobs, bot)
    return [{"method": c.method, **c.args} for c in bot.slack_api.calls[before:]]


def _reminders(calls: list[dict[str, Any]]) -> list[str]:
    """The "Still firing" replies among these calls."""
    return [c["text"] for c in calls if "Still firing" in c.get("text", "")]


async def test_no_sales_resolves_when_a_sale_comes_after_closing(store: Bot, jobs: AlertJobs,
                                                                  clock: FakeClock) -> None:
    """"No sales" fires at 17:05; at closing (21:00) with still no sale it stays open; a sale at 21:10 resolves
    it in place at the next check, with no "Still firing" reminder."""
    await _order(store, "pi_last", _ny(9, 13))
    clock.now = _ny(9, 17, 5)
    assert ["CRITICAL · No sales" in c["text"] for c in alert_calls(await run(jobs, store))] == [True]
    clock.now = _ny(9, 21, 0)
    await run(jobs, store)
    assert await store.deps.pool.fetchval(OPEN, "no_sales") == 1  # hours closed, the silence did not end
    await _order(store, "pi_back", _ny(9, 21, 10))
    clock.now = _ny(9, 21, 15)
    calls = await _new_calls(store, jobs)
    assert await store.deps.pool.fetchval(OPEN, "no_sales") == 0 and _reminders(calls) == []
    assert "Resolved after 4 h 10 min" in json.dumps([c for c in calls if c["method"] == "chat.update"])


async def test_no_sales_stays_open_over_a_closed_day_until_a_sale(dsn: str, fake_slack: FakeSlack,
                                                                   clock: FakeClock) -> None:
    """BUSINESS_DAYS=Mon-Fri: "No sales" from Friday afternoon stays open on Saturday while no sale comes (the
    rule does not judge new alerts that day) and resolves on Saturday once one does."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         BUSINESS_DAYS="Mon-Fri") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            await _order(bot, "pi_last", _ny(12, 13))
            clock.now = _ny(12, 17, 5)
            assert len(alert_calls(await run(jobs, bot))) == 1
            clock.now = _ny(13, 10)
            await run(jobs, bot)
            assert await bot.deps.pool.fetchval(OPEN, "no_sales") == 1
            await _order(bot, "pi_saturday", _ny(13, 10, 30))
            clock.now = _ny(13, 10, 35)
            await run(jobs, bot)
            assert await bot.deps.pool.fetchval(OPEN, "no_sales") == 0
        finally:
            await jobs.leadership.release()


async def set_rule(bot: Bot, clock: FakeClock, rule: dict[str, object]) -> None:
    """An admin sets the sync_failures rule in Settings: stored, then in force — stored first, so the settings
    follower's own reload (every few seconds, and at its first LISTEN) finds it rather than undoing it."""
    await stored.put(bot.deps.pool, key="rule:sync_failures", value=rule, user_id="UADMIN", at=clock.now)
    await bot.deps.live.reload(bot.deps.pool)


async def _checks_after_change(store: Bot, jobs: AlertJobs, clock: FakeClock, rule: dict[str, object], *,
                               checks: int) -> list[dict[str, Any]]:
    """An admin sets sync_failures to `rule` in Settings; then `checks` checks 4 h apart, the failures going on:
    the Slack calls they made."""
    await set_rule(store, clock, rule)
    calls = []
    for _ in range(checks):
        clock.advance(hours=4, minutes=1)
        await _sync_failing(store, clock)
        calls += await _new_calls(store, jobs)
    return calls


async def test_rule_turned_off_in_settings_resolves_its_open_alert(store: Bot, jobs: AlertJobs,
                                                                   clock: FakeClock) -> None:
    """The owner turns sync_failures Off in Settings while its warning fires: the alert is closed in place at
    the next check and no reminder follows, though the failures go on — and its message says it closed because
    its rule no longer runs, never "✅ Resolved", which teammates would read as the failures fixed."""
    await _sync_failing(store, clock)
    assert len(alert_calls(await run(jobs, store))) == 1
    calls = await _checks_after_change(store, jobs, clock, {"enabled": False, "severity": "warning"}, checks=3)
    assert await store.deps.pool.fetchval(OPEN, "sync_failures") == 0 and _reminders(calls) == []
    updates = [c for c in calls if c["method"] == "chat.update"]
    shown = json.dumps(updates[0], ensure_ascii=False)
    assert len(updates) == 1 and updates[0]["ts"] == posted_ts(store), updates
    assert "⏹ Closed after" in shown and "its rule no longer runs" in shown and "Resolved" not in shown, shown


async def test_site_alert_resolves_once_the_site_url_is_gone(store: Bot) -> None:
    """"Site down" opened while SITE_URL was set resolves when the check runs without one: nothing could clear
    it any more."""
    for minutes in (1, 2, 3):
        await store.deps.pool.execute("INSERT INTO site_probes (url, checked_at, ok, status, elapsed_ms, error)"
                                      " VALUES ('http://shop.test/', $1, false, 503, 20, NULL)",
                                      NOON - dt.timedelta(minutes=minutes))
    settings = store.deps.settings
    ctx = Context(now=NOON, tz=NY, business_hours=settings.business_hours, site_url="http://shop.test/")
    notifier = notifier_for(store.deps)
    async with store.deps.pool.acquire() as conn:
        await evaluate(conn, rules=RuleSet(), ctx=ctx, notifier=notifier)
        assert await conn.fetchval(OPEN, "site_down") == 1
        await evaluate(conn, rules=RuleSet(), ctx=Context(now=NOON + dt.timedelta(minutes=1), tz=NY,
                                                          business_hours=settings.business_hours, site_url=None),
                       notifier=notifier)
        assert await conn.fetchval(OPEN, "site_down") == 0


async def test_rule_demoted_to_info_stops_reminding_and_says_so(store: Bot, jobs: AlertJobs,
                                                                clock: FakeClock) -> None:
    """Sync failures go on; the owner demotes sync_failures to info in Settings: the open alert takes the new
    severity, its message is re-rendered as INFO and it no longer reminds."""
    await _sync_failing(store, clock)
    assert len(alert_calls(await run(jobs, store))) == 1
    calls = await _checks_after_change(store, jobs, clock, {"enabled": True, "severity": "info"}, checks=2)
    assert await store.deps.pool.fetchval("SELECT severity FROM alerts WHERE rule = 'sync_failures'"
                                          " AND resolved_at IS NULL") == "info"
    assert _reminders(calls) == []
    updates = [c for c in calls if c["method"] == "chat.update"]
    assert len(updates) == 1 and "INFO · Sync failures" in updates[0]["text"]


async def test_held_warning_promoted_to_critical_is_posted_at_night(store: Bot, jobs: AlertJobs,
                                                                    clock: FakeClock) -> None:
    """A sync-failure warning at 23:00 is held; promoted to critical in Settings, it is posted at once."""
    clock.now = _ny(9, 23)
    await _sync_failing(store, clock)
    assert alert_calls(await run(jobs, store)) == []
    await set_rule(store, clock, {"enabled": True, "severity": "critical"})
    clock.advance(minutes=1)
    calls = alert_calls(await _new_calls(store, jobs))
    assert len(calls) == 1 and "CRITICAL · Sync failures" in calls[0]["text"]


async def test_held_warning_silenced_on_home_waits_for_its_silence(store: Bot, jobs: AlertJobs,
                                                                   clock: FakeClock) -> None:
    """08:30: a sync-failure warning is held before business hours; silenced for an hour from App Home, it is
    not posted at 09:00, and at 09:31 it is posted once, with no "un-silenced" edit of it."""
    clock.now = _ny(10, 8, 30)
    await _sync_failing(store, clock)
    assert alert_calls(await run(jobs, store)) == []
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts WHERE rule = 'sync_failures'")
    assert f'"value": "{alert_id}"' in json.dumps(await render_home(store.deps, buttons=True))  # offered on Home
    assert (await store.button("alert_silence_1h", str(alert_id), user="UONCALL", view=True)).status == 200
    for _ in range(250):  # Bolt runs the listener after the ack
        if await store.deps.pool.fetchval("SELECT silenced_by FROM alerts WHERE id = $1", alert_id):
            break
        await asyncio.sleep(0.02)
    clock.now = _ny(10, 9)
    await _sync_failing(store, clock)
    assert alert_calls(await _new_calls(store, jobs)) == []  # silenced until 09:30
    clock.now = _ny(10, 9, 31)
    await _sync_failing(store, clock)
    calls = await _new_calls(store, jobs)
    assert [c["method"] for c in alert_calls(calls)] == ["chat.postMessage"]
    assert "Silenced" not in json.dumps(calls[0]["blocks"])
    clock.advance(minutes=1)
    await _sync_failing(store, clock)
    assert await _new_calls(store, jobs) == []


async def test_outage_is_recorded_when_another_replica_takes_the_lead(dsn: str, fake_slack: FakeSlack) -> None:
    """The leader posts "Database unreachable"; the restart ends its leader session and the other replica leads
    once the database is back: the replica that posted still writes the outage down for the morning report."""
    clock = FakeClock(NOON)
    async with start_bot(dsn, fake_slack, clock=clock) as a, start_bot(dsn, fake_slack, clock=clock) as b:
        ja, jb = AlertJobs(a.deps, leadership=Leadership(dsn)), AlertJobs(b.deps, leadership=Leadership(dsn))
        try:
            await ja.tick()
            await jb.tick()
            assert ja.leadership.was_leader and not jb.leadership.was_leader
            for _ in range(2):
                await ja.dbwatch.down(clock.now, "ConnectionRefusedError", may_post=True)
                clock.advance(minutes=1)
            assert "Database unreachable" in a.slack_api.posted()[-1]["text"]
            await ja.leadership.release()  # the restart ended A's leader session
            clock.advance(minutes=3)
            for _ in range(2):  # B ticks first once the database is back, and takes the lead
                await jb.tick()
                await ja.tick()
                clock.advance(minutes=1)
            assert jb.leadership.was_leader and not ja.leadership.was_leader
            rows = await a.deps.pool.fetch("SELECT started_at, resolved_at FROM alerts"
                                           " WHERE rule = 'database_unreachable'")
            assert [(r["started_at"], r["resolved_at"]) for r in rows] == [(NOON, NOON + dt.timedelta(minutes=5))]
        finally:
            await ja.leadership.release()
            await jb.leadership.release()


def test_sales_rules_judge_the_small_hours_of_an_overnight_window_by_its_opening_day() -> None:
    """Business hours 18:00-02:00, Monday to Friday: Saturday 01:00 is Friday's business day (the sales rules
    judge), Saturday 19:00 and Monday 01:00 are not."""
    hours = HourWindow(dt.time(18), dt.time(2))

    def sales_judged(at: dt.datetime) -> bool:
        ctx = Context(now=at, tz=NY, business_hours=hours, site_url=None, business_days=frozenset(range(5)))
        return ctx.business_day() and "no_sales" in {r.name for r in active_rules(RuleSet(), ctx)}

    assert sales_judged(_ny(13, 1)) and not sales_judged(_ny(13, 19)) and not sales_judged(_ny(15, 1))
    assert sales_judged(_ny(12, 19)) and sales_judged(_ny(16, 1))
