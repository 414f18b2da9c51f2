"""The daily reports' windows after Settings changes and on odd days: the morning's night starts where the previous
evening report stopped (as recorded, whatever the Settings say now), a past day's evening report lists that day's
problems, and "a week earlier" keeps whole local days where a day skips midnight."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from bot.blocks.reports import report_message
from bot.reports.figures import EveningFigures, MorningFigures
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, slot_for
from queries import reports as q
from tests.blockkit import assert_valid_message
from tests.conftest import FakeClock, make_settings
from tests.report_seed import History, Order, as_dict, at, insert, insert_alert

NY = ZoneInfo("America/New_York")
CAIRO = ZoneInfo("Africa/Cairo")  # springs forward at midnight: Friday 24 April 2026 starts at 01:00


def one_order(n: int, when: dt.datetime, amount: int) -> Order:
    return Order(f"pi_rev_{n}", "completed", amount, "USD", f"b{n}@x.test", "Course", when)


async def seed(pool: asyncpg.Pool, *orders: Order) -> None:
    await insert(pool, History(orders=list(orders)))


async def run_until(r: Reporter, clock: FakeClock, until: dt.datetime) -> None:
    """The report job every 5 minutes, as the catch-up job runs it."""
    while clock.now < until:
        await r.run_due()
        clock.advance(minutes=5)


async def morning_text(pool: asyncpg.Pool, day: dt.date) -> str:
    text: str = await pool.fetchval("SELECT payload->>'text' FROM outbox WHERE dedupe_key = $1",
                                    f"report:morning:{day.isoformat()}")
    return text


async def test_an_order_between_the_old_and_new_evening_time_is_in_the_next_morning_report(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Tuesday's evening report goes out at 18:00 (covering until 18:00). At 22:00 an admin moves the evening report
    to 20:00. Wednesday's morning report says "Overnight" since the previous evening report — it must count the
    $50 sale of 19:00, which no report has counted, rather than start at 20:00 (the new time, never sent)."""
    env = {"STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path)}
    await seed(pool, one_order(1, at(NY, 2026, 6, 9, 19, 0), 5000), one_order(2, at(NY, 2026, 6, 10, 3, 0), 1000))
    clock = FakeClock(at(NY, 2026, 6, 9, 9, 0, 30))
    before = Reporter(pool=pool, settings=make_settings(**env), slack=None, clock=clock)
    await run_until(before, clock, at(NY, 2026, 6, 9, 22, 0))
    evening = await pool.fetchval("SELECT scheduled_at FROM reports WHERE kind = 'evening'")
    assert evening == at(NY, 2026, 6, 9, 18, 0)
    after = Reporter(pool=pool, settings=make_settings(**env, EVENING_REPORT_AT="20:00"), slack=None, clock=clock)
    await run_until(after, clock, at(NY, 2026, 6, 10, 9, 5))
    text = await morning_text(pool, dt.date(2026, 6, 10))
    assert "overnight 2 orders · $60.00" in text, text
    blocks = await pool.fetchval("SELECT payload->>'blocks' FROM outbox WHERE dedupe_key = 'report:morning:2026-06-10'")
    assert "*Overnight* (Tue 18:00 → Wed 09:00 EDT)" in blocks  # the label says the window it covers


async def test_an_order_before_the_evening_report_is_not_counted_again_when_the_evening_moved_earlier(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Tuesday's evening report at 18:00 counted the 17:00 sale; at 22:00 the evening report moves to 16:00.
    Wednesday's night starts at 18:00, where Tuesday's report stopped, not at 16:00 (17:00 counted twice)."""
    env = {"STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path)}
    await seed(pool, one_order(1, at(NY, 2026, 6, 9, 17, 0), 5000), one_order(2, at(NY, 2026, 6, 10, 3, 0), 1000))
    clock = FakeClock(at(NY, 2026, 6, 9, 9, 0, 30))
    before = Reporter(pool=pool, settings=make_settings(**env), slack=None, clock=clock)
    await run_until(before, clock, at(NY, 2026, 6, 9, 22, 0))
    after = Reporter(pool=pool, settings=make_settings(**env, EVENING_REPORT_AT="16:00"), slack=None, clock=clock)
    await run_until(after, clock, at(NY, 2026, 6, 10, 9, 5))
    text = await morning_text(pool, dt.date(2026, 6, 10))
    assert "overnight 1 order · $10.00" in text, text


async def test_an_order_after_the_evening_report_is_in_the_morning_report_when_the_zone_changed(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    """A store on UTC gets its evening report at 18:00 UTC; at 19:00 UTC the admin sets America/New_York (15:00
    there, the day's evening report already sent). The next morning report (09:00 New York) counts orders since
    the evening report that went out, 18:00 UTC — not since 18:00 New York (22:00 UTC), which no report covered."""
    env = {"SALESPULSE_DATA_DIR": str(tmp_path)}
    utc = dt.UTC
    await seed(pool, one_order(1, dt.datetime(2026, 6, 9, 20, 0, tzinfo=utc), 5000))
    clock = FakeClock(dt.datetime(2026, 6, 9, 9, 0, 30, tzinfo=utc))
    before = Reporter(pool=pool, settings=make_settings(**env, STORE_TIMEZONE="UTC"), slack=None, clock=clock)
    await run_until(before, clock, dt.datetime(2026, 6, 9, 19, 0, tzinfo=utc))
    after = Reporter(pool=pool, settings=make_settings(**env, STORE_TIMEZONE="America/New_York"), slack=None,
                     clock=clock)
    await run_until(after, clock, at(NY, 2026, 6, 10, 9, 5))
    kinds = [tuple(r) for r in await pool.fetch("SELECT kind, local_date FROM reports ORDER BY scheduled_at")]
    assert kinds[-1] == ("morning", dt.date(2026, 6, 10))
    figures = await after.figures(slot_for(ReportKind.MORNING, dt.date(2026, 6, 10), after.settings), now=clock.now)
    assert isinstance(figures, MorningFigures)
    assert as_dict(figures.overnight_totals) == {"USD": (1, 5000)}, figures.overnight


async def test_a_missed_evening_starts_the_night_at_the_time_its_notice_named(pool: asyncpg.Pool,
                                                                              tmp_path: Path) -> None:
    """Tuesday's evening report (due 18:00) was noted as missed; the evening time has since moved to 20:00. The
    night starts at 18:00, the time the notice named, not an older evening report's (a "night" of a day and a
    half) nor 20:00. With nothing recorded (a fresh install) it starts at yesterday's time under today's Settings."""
    env = {"STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path), "EVENING_REPORT_AT": "20:00"}
    now = at(NY, 2026, 6, 10, 9, 1)
    r = Reporter(pool=pool, settings=make_settings(**env), slack=None, clock=lambda: now)
    morning = slot_for(ReportKind.MORNING, dt.date(2026, 6, 10), r.settings)
    fresh = await r.figures(morning, now=now)
    assert isinstance(fresh, MorningFigures)
    assert fresh.overnight.start == at(NY, 2026, 6, 9, 20, 0)
    for day, status in ((dt.date(2026, 6, 8), "sent"), (dt.date(2026, 6, 9), "missed")):
        await q.record(pool, kind="evening", local_date=day, status=status,
                       scheduled_at=at(NY, day.year, day.month, day.day, 18), recorded_at=now, late=False,
                       source="scheduler", chart_status="none", chart_png=None)
    figures = await r.figures(morning, now=now)
    assert isinstance(figures, MorningFigures)
    assert figures.overnight.start == at(NY, 2026, 6, 9, 18, 0)


async def test_a_past_days_evening_report_lists_that_days_problems_not_todays(pool: asyncpg.Pool,
                                                                               tmp_path: Path) -> None:
    """The "was not sent" notice says to see Tuesday's evening report with `salespulse report evening --date
    2026-06-09`; run on Wednesday at 12:00, its "Needs attention" lists an alert that started Wednesday 10:00 and
    Slack errors of Wednesday as "errors today" — none of which Tuesday had."""
    await insert_alert(pool, severity="critical", title="Checkout errors", started_at=at(NY, 2026, 6, 10, 10, 0))
    await pool.execute("INSERT INTO delivery_errors (channel, error, permanent, created_at)"
                       " VALUES ('sales', 'channel_not_found', true, $1)", at(NY, 2026, 6, 10, 11, 0))
    now = at(NY, 2026, 6, 10, 12, 0)
    r = Reporter(pool=pool, settings=make_settings(STORE_TIMEZONE="America/New_York",
                                                   SALESPULSE_DATA_DIR=str(tmp_path)), slack=None, clock=lambda: now)
    figures = await r.figures(slot_for(ReportKind.EVENING, dt.date(2026, 6, 9), r.settings), now=now)
    text = str(report_message(figures, tz=NY).blocks)
    assert "Checkout errors" not in text and "Slack delivery" not in text, text


async def test_a_past_days_evening_report_says_what_needed_attention_then(pool: asyncpg.Pool,
                                                                         tmp_path: Path) -> None:
    """Tuesday's problems, seen on Wednesday: an alert firing at 18:00 and not resolved since is "not resolved yet"
    (not "still firing" then), one resolved Wednesday says when, and the Slack errors are "that day", not
    "today"; an alert resolved before 18:00 and an error after it are left out."""
    await insert_alert(pool, severity="critical", title="Checkout errors", started_at=at(NY, 2026, 6, 9, 10, 0))
    await insert_alert(pool, severity="warning", title="Slow webhooks", started_at=at(NY, 2026, 6, 9, 11, 0),
                       resolved_at=at(NY, 2026, 6, 10, 8, 0))
    await insert_alert(pool, severity="warning", title="Fixed earlier", started_at=at(NY, 2026, 6, 9, 9, 0),
                       resolved_at=at(NY, 2026, 6, 9, 9, 30))
    await pool.executemany("INSERT INTO delivery_errors (channel, error, permanent, created_at)"
                           " VALUES ('sales', $1, true, $2)",
                           [("channel_not_found", at(NY, 2026, 6, 9, 12, 0)), ("is_archived", at(NY, 2026, 6, 9, 19))])
    now = at(NY, 2026, 6, 10, 12, 0)
    r = Reporter(pool=pool, settings=make_settings(STORE_TIMEZONE="America/New_York",
                                                   SALESPULSE_DATA_DIR=str(tmp_path)), slack=None, clock=lambda: now)
    figures = await r.figures(slot_for(ReportKind.EVENING, dt.date(2026, 6, 9), r.settings), now=now)
    msg = report_message(figures, tz=NY)
    assert_valid_message(msg)
    text = json.dumps(msg.blocks, ensure_ascii=False)
    assert "*Needed attention at 18:00 that day*" in text, text
    assert "🔴 *Checkout errors* — since Tue 10:00, *not resolved yet*" in text
    assert "🟡 *Slow webhooks* — since Tue 11:00, resolved Wed 08:00 ✅" in text
    assert "*Slack delivery* 1 error that day (1 permanent), last: `sales: channel_not_found`" in text
    assert "Fixed earlier" not in text and "today" not in text and "still firing" not in text


async def test_yesterday_against_a_whole_day_a_week_earlier_when_yesterday_skipped_midnight(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Saturday's morning report compares Friday 24 April (from 01:00) with the whole of Friday 17 April —
    including its $40 sale at 00:30, which the "against" figure leaves out when it starts the week-earlier day at
    01:00 too."""
    await seed(pool, one_order(1, at(CAIRO, 2026, 4, 17, 0, 30), 4000),
               one_order(2, at(CAIRO, 2026, 4, 17, 12, 0), 1000), one_order(3, at(CAIRO, 2026, 4, 24, 12, 0), 2000))
    now = at(CAIRO, 2026, 4, 25, 9, 1)
    r = Reporter(pool=pool, settings=make_settings(STORE_TIMEZONE="Africa/Cairo", SALESPULSE_DATA_DIR=str(tmp_path)),
                 slack=None, clock=lambda: now)
    figures = await r.figures(slot_for(ReportKind.MORNING, dt.date(2026, 4, 25), r.settings), now=now)
    assert isinstance(figures, MorningFigures)
    assert as_dict(figures.yesterday.current) == {"USD": (1, 2000)}
    assert as_dict(figures.yesterday.previous) == {"USD": (2, 5000)}, figures.yesterday.window


async def test_today_until_the_evening_against_a_week_earlier_from_its_midnight(pool: asyncpg.Pool,
                                                                               tmp_path: Path) -> None:
    """Friday 24 April's evening report (from 01:00, the day's start) against Friday 17 April from 00:00 to 18:00:
    the 00:30 sale a week earlier counts, the 19:00 one does not."""
    await seed(pool, one_order(1, at(CAIRO, 2026, 4, 17, 0, 30), 4000),
               one_order(2, at(CAIRO, 2026, 4, 17, 19, 0), 1000), one_order(3, at(CAIRO, 2026, 4, 24, 12, 0), 2000))
    now = at(CAIRO, 2026, 4, 24, 18, 1)
    r = Reporter(pool=pool, settings=make_settings(STORE_TIMEZONE="Africa/Cairo", SALESPULSE_DATA_DIR=str(tmp_path)),
                 slack=None, clock=lambda: now)
    figures = await r.figures(slot_for(ReportKind.EVENING, dt.date(2026, 4, 24), r.settings), now=now)
    assert isinstance(figures, EveningFigures)
    assert as_dict(figures.day.current) == {"USD": (1, 2000)}
    assert as_dict(figures.day.previous) == {"USD": (1, 4000)}, figures.day.window


async def test_a_missed_report_sent_later_records_the_time_it_covers(pool: asyncpg.Pool) -> None:
    """Tuesday's evening report, noted as missed when due at 18:00, is sent from the CLI after the evening time moved
    to 20:00: it covers until 20:00, so the next morning's night starts there (the row says 20:00, not 18:00)."""
    day, when = dt.date(2026, 6, 9), at(NY, 2026, 6, 10, 8, 0)
    for status, source, hour in (("missed", "scheduler", 18), ("sent", "cli", 20)):
        assert await q.record(pool, kind="evening", local_date=day, status=status,
                              scheduled_at=at(NY, 2026, 6, 9, hour), recorded_at=when, late=True, source=source,
                              chart_status="none", chart_png=None)
    assert await q.last_due(pool, kind="evening", first=day, last=day, before=when) == at(NY, 2026, 6, 9, 20)
