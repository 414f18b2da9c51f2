"""When reports go out: exactly once per local day across racing replicas, caught up (late) after downtime,
noted as missed when too old, and exactly one morning and one evening report on DST days."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.reports.reporter import Reporter
from bot.reports.schedule import DailyAt, ReportKind, due_slots, local_instant, slot_for
from handlers.scheduled import reports as report_jobs
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, make_settings, start_bot
from tests.fakes import FakeSlack
from tests.report_seed import at

NY = ZoneInfo("America/New_York")


class Clock:
    """A settable clock."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def reporter(pool: asyncpg.Pool, tmp_path: Path, clock: Clock, **env: str) -> Reporter:
    """A New York store's reporter on `clock`, in local mode (charts saved under tmp_path)."""
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path), **env)
    return Reporter(pool=pool, settings=settings, slack=None, clock=clock)


async def deliver(*bots: Bot) -> None:
    """Drain the outbox with the clock standing still: the channel's pace row is opened first (it starts
    at the database's real now(), which a clock set in the past would never reach)."""
    for bot in bots:
        await bot.deps.pool.execute("INSERT INTO channel_pace (channel, next_post_at) VALUES ('reports', 'epoch')"
                                    " ON CONFLICT (channel) DO UPDATE SET next_post_at = 'epoch'")
    await asyncio.gather(*(bot.drain() for bot in bots))


async def recorded(pool: asyncpg.Pool) -> list[tuple[str, dt.date, str, dt.datetime, bool]]:
    """(kind, day, status, scheduled_at, late) of every recorded report."""
    rows = await pool.fetch("SELECT kind, local_date, status, scheduled_at, late FROM reports"
                            " ORDER BY scheduled_at, kind")
    return [tuple(r) for r in rows]  # type: ignore[misc]  # rows of known width


async def test_two_replicas_racing_send_each_report_once(dsn: str, fake_slack: FakeSlack) -> None:
    """Two bots running the report job at the same moment record, queue and post the report once."""
    clock = Clock(at(NY, 2026, 3, 10, 9, 0, 5))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as a, \
            start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as b:
        ra, rb = Reporter.from_deps(a.deps), Reporter.from_deps(b.deps)
        results = await asyncio.gather(*(r.run_due() for r in (ra, rb, ra, rb)))
        assert sum(len(sent) for sent in results) == 1
        await deliver(a, b)
        uploads = await asyncio.gather(ra.upload_charts(), rb.upload_charts())
        assert sum(uploads) == 1
        posted = [p for p in fake_slack.posted() if p["channel"] == "C0REPORTS"]  # #daily-reports, by its id
        assert len(posted) == 1 and posted[0]["text"].startswith("☀️ Morning report · Tue 10 Mar")
        assert len(fake_slack.posted("files.completeUploadExternal")) == 1
        assert await a.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'report'") == 1
        assert await a.deps.pool.fetchval("SELECT count(*) FROM reports") == 1


async def test_report_due_while_down_is_sent_late_when_the_bot_is_back(pool: asyncpg.Pool,
                                                                       tmp_path: Path) -> None:
    """Running at 08:00, back at 11:40 after missing 09:00: the morning report goes out once, marked late (a first
    start after 09:00 is late too, but not "when salespulse was not running": tests/test_report_late_wording.py)."""
    clock = Clock(at(NY, 2026, 3, 10, 8, 0))
    r = reporter(pool, tmp_path, clock)
    assert await r.run_due() == []
    clock.now = at(NY, 2026, 3, 10, 11, 40)
    sent = await r.run_due()
    assert [(s.slot.kind, s.status, s.late) for s in sent] == [(ReportKind.MORNING, "sent", True)]
    payload = await pool.fetchval("SELECT payload FROM outbox WHERE kind = 'report'")
    assert_valid_message(payload)
    assert "(late)" in payload["text"]
    assert "Sent late, at Tue 11:40: due at 09:00 EDT, when salespulse was not running" in str(payload["blocks"])
    clock.now += dt.timedelta(minutes=5)
    assert await r.run_due() == []


async def test_report_on_time_is_not_marked_late(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Run at its time (a few minutes' slack for a busy loop), a report carries no late notice."""
    r = reporter(pool, tmp_path, Clock(at(NY, 2026, 3, 10, 18, 3)))
    sent = await r.run_due()
    assert [(s.slot.kind, s.late) for s in sent] == [(ReportKind.EVENING, False)]
    payload = await pool.fetchval("SELECT payload FROM outbox WHERE kind = 'report'")
    assert "late" not in payload["text"] and "Sent late" not in str(payload["blocks"])


async def test_yesterdays_evening_report_is_never_sent_the_next_afternoon(pool: asyncpg.Pool,
                                                                          tmp_path: Path) -> None:
    """After a long outage only what is still news goes out; older reports are noted as missed, once."""
    clock = Clock(at(NY, 2026, 3, 9, 9, 1))
    r = reporter(pool, tmp_path, clock)
    await r.run_due()  # Monday's morning report: the bot has been sending reports
    clock.now = at(NY, 2026, 3, 10, 13, 0)  # down from Monday 09:01 until Tuesday 13:00
    sent = await r.run_due()
    assert [(s.slot.kind, s.slot.day, s.status) for s in sent] == [
        (ReportKind.EVENING, dt.date(2026, 3, 9), "missed"),
        (ReportKind.MORNING, dt.date(2026, 3, 10), "sent")]
    notice = await pool.fetchval("SELECT payload FROM outbox WHERE kind = 'report_missed'")
    assert_valid_message(notice)
    assert "evening report for Mon 9 Mar (due 18:00 EDT) was not sent" in notice["text"]
    assert "salespulse report evening --date 2026-03-09" in str(notice["blocks"])
    clock.now += dt.timedelta(hours=1)
    assert await r.run_due() == []
    # Asked for on demand (the notice's command), the missed report is sent after all, once.
    missed = slot_for(ReportKind.EVENING, dt.date(2026, 3, 9), r.settings)
    assert (await r.send(missed, source="cli")) is not None
    assert await r.send(missed, source="cli") is None
    assert [row[2] for row in await recorded(pool)] == ["sent", "sent", "sent"]


async def test_a_fresh_install_does_not_announce_reports_it_never_had(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """First start at 16:00: the morning report is too old to send and, with no report before, not 'missed'."""
    r = reporter(pool, tmp_path, Clock(at(NY, 2026, 3, 10, 16, 0)))
    assert await r.run_due() == []
    assert await recorded(pool) == []


async def tick_through(r: Reporter, clock: Clock, start: dt.datetime, end: dt.datetime,
                       step: dt.timedelta = dt.timedelta(minutes=5)) -> None:
    """Run the report job every `step` from start to end, as the catch-up job does."""
    clock.now = start
    while clock.now < end:
        await r.run_due()
        clock.now += step


@pytest.mark.parametrize(("day", "morning", "expected_morning_utc"), [
    # Spring forward: 02:30 does not exist on Sun 8 Mar 2026; the report runs once, at 03:30 EDT.
    (dt.date(2026, 3, 8), "02:30", dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC)),
    # Fall back: 01:30 happens twice on Sun 1 Nov 2026; the report runs once, at the first (EDT).
    (dt.date(2026, 11, 1), "01:30", dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)),
])
async def test_dst_days_have_exactly_one_morning_and_one_evening_report(
        pool: asyncpg.Pool, tmp_path: Path, day: dt.date, morning: str, expected_morning_utc: dt.datetime) -> None:
    """Ticking every 5 minutes through a DST day and its neighbours sends one report of each kind a day."""
    clock = Clock(at(NY, 2026, 1, 1))
    r = reporter(pool, tmp_path, clock, MORNING_REPORT_AT=morning)
    before, after = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
    await tick_through(r, clock, at(NY, before.year, before.month, before.day, 0, 2),
                       at(NY, after.year, after.month, after.day, 23, 58))
    rows = await recorded(pool)
    assert [(kind, d) for kind, d, *_ in rows] == [
        (k, d) for d in (before, day, after) for k in ("morning", "evening")]
    assert all(status == "sent" and not late for _, _, status, _, late in rows)
    assert rows[2][3] == expected_morning_utc


@pytest.mark.parametrize(("at_time", "days", "expected"), [
    (dt.time(2, 30), (dt.date(2026, 3, 7), dt.date(2026, 3, 10)),
     ["2026-03-07 02:30 EST", "2026-03-08 03:30 EDT", "2026-03-09 02:30 EDT"]),
    (dt.time(1, 30), (dt.date(2026, 10, 31), dt.date(2026, 11, 3)),
     ["2026-10-31 01:30 EDT", "2026-11-01 01:30 EDT", "2026-11-02 01:30 EST"]),
    (dt.time(9), (dt.date(2026, 3, 7), dt.date(2026, 3, 10)),
     ["2026-03-07 09:00 EST", "2026-03-08 09:00 EDT", "2026-03-09 09:00 EDT"]),
])
def test_daily_trigger_fires_once_per_local_day_across_dst(at_time: dt.time, days: tuple[dt.date, dt.date],
                                                           expected: list[str]) -> None:
    """The APScheduler trigger gives one fire time per local day, never none or two around a DST change."""
    trigger = DailyAt(at_time, NY)
    now = dt.datetime.combine(days[0], dt.time(0), tzinfo=NY)
    fire = trigger.get_next_fire_time(None, now)
    fires = []
    while fire is not None and fire.date() < days[1]:
        fires.append(f"{fire:%Y-%m-%d %H:%M %Z}")
        fire = trigger.get_next_fire_time(fire, fire)
    assert fires == expected


def test_due_slots_cover_yesterdays_late_evening_report_after_midnight() -> None:
    """An evening report at 23:30 missed by a restart at 00:40 is still due (from yesterday)."""
    settings = make_settings(STORE_TIMEZONE="America/New_York", EVENING_REPORT_AT="23:30")
    due = due_slots(at(NY, 2026, 3, 11, 0, 40), settings)
    assert [(s.kind, s.day) for s in due] == [(ReportKind.EVENING, dt.date(2026, 3, 10))]
    assert due[0].scheduled_at == local_instant(dt.date(2026, 3, 10), dt.time(23, 30), NY)


async def test_register_adds_both_reports_and_a_catch_up_job(dsn: str, fake_slack: FakeSlack) -> None:
    """The jobs run at the configured local times, and the catch-up job at start-up then every 5 minutes."""
    clock = Clock(at(NY, 2026, 3, 10, 12, 0))
    async with start_bot(dsn, fake_slack, clock=clock, background_worker=True, STORE_TIMEZONE="America/New_York",
                         MORNING_REPORT_AT="08:15") as bot:
        scheduler = AsyncIOScheduler(timezone=NY)  # not started: nothing runs
        report_jobs.register(scheduler, bot.deps)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"report-morning", "report-evening", "report-catch-up"}
        morning = jobs["report-morning"].trigger.get_next_fire_time(None, clock.now)
        assert morning == slot_for(ReportKind.MORNING, dt.date(2026, 3, 11), bot.deps.settings).scheduled_at
        evening = jobs["report-evening"].trigger.get_next_fire_time(None, clock.now)
        assert f"{evening:%H:%M %Z}" == "18:00 EDT"
        await bot.deps.pool.execute("INSERT INTO channel_pace (channel, next_post_at) VALUES ('reports', 'epoch')")
        # The job function: the morning report (late), posted by the worker, then its chart in the thread.
        assert await report_jobs.run_reports(bot.deps) == 1
        [post] = fake_slack.posted()
        assert post["text"].startswith("☀️ Morning report · Tue 10 Mar (late)")
        [done] = fake_slack.posted("files.completeUploadExternal")
        assert done["thread_ts"] == await bot.deps.pool.fetchval("SELECT slack_ts FROM outbox WHERE kind = 'report'")
