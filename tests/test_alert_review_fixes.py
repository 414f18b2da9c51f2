"""The alerts review's six defects, each with the test that showed it: a threshold the Settings modal took could
stop every alert (and /health); a flapping site paged again and again and "Silence 1 h" did not hold; a dispute
resolved by hand came back as new; the dispute threshold did nothing; "Database unreachable" paged in quiet hours;
a dispute alert aging out said "✅ Resolved"."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from bot.alerts.engine import evaluate
from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from bot.alerts.respond import notifier_for
from bot.alerts.rules import Context, Finding, Rule, RuleSet
from bot.alerts.rules_file import load_rules
from bot.blocks import settings as view
from bot.settings.values import effective
from queries.executor import Executor
from tests import test_alerts
from tests.conftest import Bot, FakeClock, make_settings, start_bot
from tests.fakes import FakeSlack
from tests.settings_forms import ADMIN, open_settings, put, state_of, submit
from tests.test_alerts import NOON, NY, alert_calls, click, failures, just_before, posted_ts, run

clock, store, jobs = test_alerts.clock, test_alerts.store, test_alerts.jobs  # a New York store, Tuesday 14:00

DISPUTE = ("INSERT INTO disputes (id, amount, currency, reason, status, created_at)"
           " VALUES ($1, 4200, 'USD', 'fraudulent', 'needs_response', $2)")
PROBE = ("INSERT INTO site_probes (url, checked_at, ok, status, elapsed_ms, error)"
         " VALUES ('http://shop.test/', $1, $2, $3, 40, $4)")


# 1. Thresholds: refused outside their range in the modal, kept inside it on load, and one failing rule is skipped.

@pytest.mark.parametrize(("rule", "typed"), [
    ("site_down", "0"),                 # "failed checks in a row": 0 passed the "0 or more" check
    ("site_down", "100000000000000000000"),  # a whole number: LIMIT overflows bigint
    ("delivery_stuck", "10000000000"),  # minutes: "never, really" — now - 19,000 years
    ("no_sales", "100000000000"),       # business hours: timedelta overflows
])
async def test_a_threshold_the_modal_accepts_does_not_stop_every_alert(dsn: str, fake_slack: FakeSlack,
                                                                       rule: str, typed: str) -> None:
    """An admin types a threshold for one rule: it is refused on its field, naming the range, and ten failed
    payments still page."""
    clock = FakeClock(NOON)
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SALESPULSE_ADMINS=ADMIN, SITE_URL="http://shop.test/") as bot:
        state = state_of(await open_settings(bot))
        put(state, view.threshold_block(rule), value=typed)
        status, body = await submit(bot, state)
        assert status == 200 and body.get("response_action") == "errors"
        assert list(body["errors"]) == [view.threshold_block(rule)] and " from 1 to " in body["errors"][
            view.threshold_block(rule)], body
        await bot.deps.pool.execute("INSERT INTO orders (id, payment_status, amount_total, currency, created_at,"
                                    " status_at) VALUES ('pi_old', 'completed', 1000, 'USD', $1, $1)",
                                    clock.now - dt.timedelta(hours=1))
        await failures(bot, 10, clock.now - dt.timedelta(minutes=1))
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            calls = alert_calls(await run(jobs, bot))
        finally:
            await jobs.leadership.release()
        assert [("CRITICAL · Payment failures spiking" in c["text"]) for c in calls] == [True]


async def test_a_delivery_stuck_threshold_the_modal_accepts_leaves_health_answering(dsn: str,
                                                                                   fake_slack: FakeSlack) -> None:
    """"Slack delivery stuck" set to 10,000,000,000,000 minutes (a way to say "never"): refused, and /health, the
    dashboard and App Home, which read that threshold too, still answer."""
    from bot.answers.gather import gather_health

    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as bot:
        state = state_of(await open_settings(bot))
        put(state, view.threshold_block("delivery_stuck"), value="10000000000000")
        status, body = await submit(bot, state)
        assert status == 200 and "from 1 to 1440" in body["errors"][view.threshold_block("delivery_stuck")]
        assert await gather_health(bot.deps) is not None


def test_a_stored_threshold_outside_its_range_is_kept_inside_it(caplog: pytest.LogCaptureFixture) -> None:
    """Values saved from Slack before the ranges existed (site down after 0 checks, delivery stuck after 10^13
    minutes) load as the nearest end of their range, with a warning; /health's threshold stays a real duration."""
    with caplog.at_level(logging.WARNING):
        _, rules = effective(make_settings(), RuleSet(), {"rule:site_down": {"threshold": 0},
                                                          "rule:delivery_stuck": {"threshold": 1e13}})
    by_name = {r.name: r.threshold for r in rules.rules}
    assert (by_name["site_down"], by_name["delivery_stuck"]) == (1, 1440)
    assert rules.delivery_stuck_after == dt.timedelta(days=1)
    assert "site_down threshold 0.0 is outside a whole number from 1 to 60" in caplog.text


def test_a_rules_file_threshold_outside_its_range_is_kept_inside_it(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """An ALERT_RULES_FILE written before the ranges (no_sales after 10^11 hours) still starts the bot: the
    threshold is the range's end, and the warning names the file."""
    path = tmp_path / "rules.toml"
    path.write_text("[rules.no_sales]\nthreshold = 100000000000.0\n[rules.site_down]\nthreshold = 0\n", "utf-8")
    with caplog.at_level(logging.WARNING):
        rules = load_rules(path)
    by_name = {r.name: r.threshold for r in rules.rules}
    assert (by_name["no_sales"], by_name["site_down"]) == (168, 1)
    assert f"ALERT_RULES_FILE {path}: the no_sales threshold" in caplog.text


async def _divide_by_zero(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    await db.fetchval("SELECT 1 / 0")  # a failed query: without its savepoint it aborts the whole transaction
    return []


async def _connection_lost(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    raise ConnectionResetError("the server closed the connection")


async def test_one_failing_rule_is_skipped_and_the_others_fire(store: Bot, clock: FakeClock,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """The sync-failures check breaks (its query fails) while its alert is open: it is logged by name and left as
    it is, and the payment-failures critical still opens; the database going away still ends the evaluation."""
    ctx = Context(now=clock.now, tz=NY, business_hours=store.deps.settings.business_hours, site_url=None)
    rules = {r.name: r for r in RuleSet().rules}
    await store.deps.pool.execute("INSERT INTO app_events (kind, system, message, occurred_at, received_at)"
                                  " VALUES ('sync_failure', 'crm', 'x', $1, $1)", just_before(clock))
    async with store.deps.pool.acquire() as conn:
        assert await evaluate(conn, rules=RuleSet((rules["sync_failures"],)), ctx=ctx, notifier=notifier_for(
            store.deps)) == 1
        broken = dataclasses.replace(rules["sync_failures"], check=_divide_by_zero)
        await failures(store, 10, just_before(clock))
        with caplog.at_level(logging.ERROR):
            await evaluate(conn, rules=RuleSet((broken, rules["payment_failures_critical"])), ctx=ctx,
                           notifier=notifier_for(store.deps))
        assert "alert rule sync_failures failed" in caplog.text
        rows = await conn.fetch("SELECT rule, resolved_at FROM alerts ORDER BY id")
        assert [(r["rule"], r["resolved_at"]) for r in rows] == [("sync_failures", None),
                                                                  ("payment_failures_critical", None)]
        with pytest.raises(ConnectionResetError):
            await evaluate(conn, rules=RuleSet((dataclasses.replace(broken, check=_connection_lost),)), ctx=ctx,
                           notifier=notifier_for(store.deps))


# 2. Flapping: one page per outage, and a silence holds for the time it says.

async def _minute(bot: Bot, jobs: AlertJobs, clock: FakeClock, *, ok: bool) -> None:
    """One probe of the site, then one check of the rules half a minute later."""
    await bot.deps.pool.execute(PROBE, clock.now, ok, 200 if ok else 503, None if ok else "HTTP 503")
    clock.advance(seconds=30)
    await run(jobs, bot)
    clock.advance(seconds=30)


def _pages(bot: Bot) -> list[str]:
    return [m["text"] for m in bot.slack_api.posted() if "<!here>" in (m.get("text") or "")]


async def test_a_flapping_site_pages_once(dsn: str, fake_slack: FakeSlack) -> None:
    """For an hour the site fails three checks, answers the fourth, fails three more…: "Site down" is posted with
    <!here> once, not once every four minutes."""
    clock = FakeClock(NOON)
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SITE_URL="http://shop.test/") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            for minute in range(60):
                await _minute(bot, jobs, clock, ok=minute % 4 == 3)
        finally:
            await jobs.leadership.release()
        assert len(_pages(bot)) == 1, f"{len(_pages(bot))} pages: {_pages(bot)[:2]}"


async def test_silence_one_hour_on_a_flapping_site_holds_for_the_hour(dsn: str, fake_slack: FakeSlack) -> None:
    """"Site down" pages; the person on call presses Silence 1 h. Ten minutes later the site answers one check and
    fails three more: no new page inside the hour they asked for."""
    clock = FakeClock(NOON)
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SITE_URL="http://shop.test/") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            for _ in range(3):
                await _minute(bot, jobs, clock, ok=False)
            assert len(_pages(bot)) == 1
            alert_id = await bot.deps.pool.fetchval("SELECT id FROM alerts")
            await click(bot, "alert_silence_1h", alert_id, user="UONCALL", ts=posted_ts(bot))
            for ok in (False,) * 10 + (True,) + (False,) * 3:
                await _minute(bot, jobs, clock, ok=ok)
        finally:
            await jobs.leadership.release()
        assert len(_pages(bot)) == 1, _pages(bot)


async def test_a_silence_carries_over_to_the_same_alert_opened_again(dsn: str, fake_slack: FakeSlack) -> None:
    """Silenced for an hour, the site answers long enough for "Site down" to resolve, then fails again within the
    hour: the new alert of the same site is silenced too (not posted), and is posted once the hour is over."""
    clock = FakeClock(NOON)
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SITE_URL="http://shop.test/") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            for _ in range(3):
                await _minute(bot, jobs, clock, ok=False)
            first = await bot.deps.pool.fetchval("SELECT id FROM alerts")
            await click(bot, "alert_silence_1h", first, user="UONCALL", ts=posted_ts(bot))
            for ok in (True,) * 15 + (False,) * 5:
                await _minute(bot, jobs, clock, ok=ok)
            rows = await bot.deps.pool.fetch("SELECT resolved_at IS NULL AS open, silenced_by FROM alerts ORDER BY id")
            assert [tuple(r) for r in rows] == [(False, "UONCALL"), (True, "UONCALL")]
            assert len(_pages(bot)) == 1, _pages(bot)
            for _ in range(45):  # the hour runs out while the site is still down
                await _minute(bot, jobs, clock, ok=False)
        finally:
            await jobs.leadership.release()
        assert len(_pages(bot)) == 2, _pages(bot)


# 3. Resolved by hand: a dispute (an event in a window) stays closed; another dispute is news.

async def test_a_dispute_resolved_by_hand_is_not_announced_again(store: Bot, jobs: AlertJobs,
                                                                  clock: FakeClock) -> None:
    """Dispute dp_1 opens; the owner answers it in Stripe and presses Resolve. The dispute is still "opened in the
    last 24 hours" — but it is the same dispute: no new "Dispute opened" message for it later that day. Another
    dispute, dp_2, is announced."""
    await store.deps.pool.execute(DISPUTE, "dp_1", just_before(clock))
    [fired] = alert_calls(await run(jobs, store))
    assert "Dispute dp_1 opened" in fired["text"]
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    await click(store, "alert_resolve", alert_id, user="UOWNER", ts=posted_ts(store))
    await run(jobs, store)
    before = len(store.slack_api.calls)
    for _ in range(8):  # the afternoon goes on, checked every half hour
        clock.advance(minutes=30)
        await run(jobs, store)
    posts = [c.args["text"] for c in store.slack_api.calls[before:]
             if c.method == "chat.postMessage" and not c.args.get("thread_ts")]
    assert posts == [], posts
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alerts WHERE rule = 'dispute_opened'") == 1
    await store.deps.pool.execute(DISPUTE, "dp_2", just_before(clock))
    [fired] = alert_calls(await run(jobs, store))[-1:]
    assert "Dispute dp_2 opened" in fired["text"] and not fired.get("thread_ts")


async def test_sync_failures_resolved_by_hand_stay_resolved_for_their_hour(store: Bot, jobs: AlertJobs,
                                                                           clock: FakeClock) -> None:
    """A sync failure, resolved by hand: not announced again while it is in the last hour's count; a failure
    after that hour fires anew."""
    await store.deps.pool.execute("INSERT INTO app_events (kind, system, message, occurred_at, received_at)"
                                  " VALUES ('sync_failure', 'crm', 'x', $1, $1)", just_before(clock))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    await click(store, "alert_resolve", alert_id, user="UOWNER", ts=posted_ts(store))
    for _ in range(5):
        clock.advance(minutes=10)
        await run(jobs, store)
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alerts") == 1
    clock.advance(minutes=20)
    await store.deps.pool.execute("INSERT INTO app_events (kind, system, message, occurred_at, received_at)"
                                  " VALUES ('sync_failure', 'crm', 'y', $1, $1)", just_before(clock))
    await run(jobs, store)
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alerts WHERE resolved_at IS NULL") == 1


# 4. The dispute threshold in Settings is obeyed.

async def test_the_dispute_threshold_set_in_settings_is_obeyed(dsn: str, fake_slack: FakeSlack) -> None:
    """The modal offers "Dispute opened" a threshold, "disputes opened in a day"; an admin sets 3. One dispute
    today is under it: no alert (as "Sync failures" at 3 would not fire on one); the third brings one alert for
    each of the three."""
    clock = FakeClock(NOON)
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SALESPULSE_ADMINS=ADMIN) as bot:
        state = state_of(await open_settings(bot))
        assert "disputes opened in a day" in json.dumps(await open_settings(bot))
        put(state, view.threshold_block("dispute_opened"), value="3")
        assert await submit(bot, state) == (200, {})
        assert next(r for r in bot.deps.rules.rules if r.name == "dispute_opened").threshold == 3
        await bot.deps.pool.execute(DISPUTE, "dp_1", just_before(clock))
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            calls = alert_calls(await run(jobs, bot))
            assert calls == [], [c["text"] for c in calls]
            for dispute in ("dp_2", "dp_3"):
                await bot.deps.pool.execute(DISPUTE, dispute, just_before(clock))
            calls = alert_calls(await run(jobs, bot))
        finally:
            await jobs.leadership.release()
        assert sorted(d for c in calls for d in ("dp_1", "dp_2", "dp_3") if f"Dispute {d} opened" in c["text"]) == [
            "dp_1", "dp_2", "dp_3"]


# 5. Quiet hours hold for the database alert too.

async def test_database_unreachable_in_quiet_hours_does_not_page(dsn: str, fake_slack: FakeSlack) -> None:
    """At 23:00 inside QUIET_HOURS 22:00-07:00 PostgreSQL goes away: "Database unreachable" is posted (it is
    critical) but without <!here>, as every other critical in quiet hours."""
    clock = FakeClock(dt.datetime(2026, 6, 9, 23, 0, tzinfo=NY).astimezone(dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         QUIET_HOURS="22:00-07:00") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            assert await jobs.leadership.hold()
            await bot.deps.pool.close()  # the database is unreachable for this process
            await jobs.tick()
            clock.advance(minutes=1)
            await jobs.tick()
        finally:
            await jobs.leadership.release()
        [posted] = bot.slack_api.posted()
        assert "Database unreachable" in posted["text"]
        assert "<!here>" not in posted["text"] and "<!here>" not in str(posted["blocks"]), posted["text"]


# 6. A dispute alert aging out is not "Resolved".

async def test_a_dispute_alert_aging_out_does_not_say_resolved(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Nobody touches the "Dispute opened" alert; 24 hours later the dispute still needs a response in Stripe.
    The message must not turn into "✅ Resolved" — the owner would read the dispute as settled."""
    await store.deps.pool.execute(DISPUTE, "dp_1", just_before(clock))
    assert len(alert_calls(await run(jobs, store))) == 1
    before = len(store.slack_api.calls)
    clock.advance(hours=24, minutes=1)
    await run(jobs, store)
    said = [c.args.get("text", "") for c in store.slack_api.calls[before:]]
    assert not any("Resolved" in t for t in said), said
    assert any("No longer new after 24 h" in t and "answer it in Stripe" in t for t in said), said


def test_a_resolved_reply_names_the_day_an_alert_of_days_began() -> None:
    """"(since 14:00)" under an alert that lasted two days reads as today's 14:00: the day is named then."""
    from bot.blocks.alerts import AlertView, resolved_reply
    start = dt.datetime(2026, 6, 8, 14, 0, tzinfo=NY)
    view = AlertView(id=1, rule="site_down", severity="critical", title="Site down", summary="down", started_at=start,
                     now=start + dt.timedelta(days=2), resolved_at=start + dt.timedelta(days=1, hours=20))
    assert resolved_reply(view, tz=NY).text == "✅ Resolved after 44 h (since Mon 08 Jun 14:00)"
    same_day = dataclasses.replace(view, resolved_at=start + dt.timedelta(minutes=11))
    assert resolved_reply(same_day, tz=NY).text == "✅ Resolved after 11 min (since 14:00)"
