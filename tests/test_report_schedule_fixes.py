"""Reports and settings changes, on-demand reports and replicas: a report is "missed" only after real downtime (the
report job's heartbeats), a report time moved into the past goes out once, `salespulse report` never takes the
place of a report not due yet, and a deadline straddled by two replicas gives the channel one message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.blocks import settings as view
from bot.cli import report as cli_report
from bot.cli.report import report_command
from bot.db import create_pool
from bot.reports.reporter import Reporter
from tests.conftest import Bot, FakeClock, make_settings, start_bot
from tests.fakes import FakeSlack
from tests.report_seed import at
from tests.settings_forms import ADMIN, open_settings, put, state_of, submit

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
TOKYO = ZoneInfo("Asia/Tokyo")


async def tick(bot: Bot, clock: FakeClock, until: dt.datetime) -> list[tuple[str, dt.date, str, bool]]:
    """Run the report job every 5 minutes, as the catch-up job does, until `until`; what it recorded."""
    done = []
    while clock.now < until:
        done += [(s.slot.kind.value, s.slot.day, s.status, s.late) for s in
                 await Reporter.from_deps(bot.deps).run_due()]
        clock.advance(minutes=5)
    return done


async def notices(pool: asyncpg.Pool) -> list[str]:
    """The texts of every "was not sent" notice queued."""
    return [r["payload"]["text"] for r in await pool.fetch("SELECT payload FROM outbox WHERE kind = 'report_missed'")]


async def test_moving_the_evening_report_earlier_does_not_claim_the_bot_was_down(dsn: str,
                                                                                fake_slack: FakeSlack) -> None:
    """The bot runs all day (its report job every 5 minutes). At 17:00 an admin moves the evening report from
    18:00 to 10:00: no "salespulse was not running" notice, and the day's evening report goes out at once, once,
    as a plain report (not "sent late")."""
    clock = FakeClock(at(NY, 2026, 6, 9, 9, 0, 30))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         SALESPULSE_ADMINS=ADMIN) as bot:
        assert await tick(bot, clock, at(NY, 2026, 6, 9, 17, 0)) == [("morning", dt.date(2026, 6, 9), "sent", False)]
        state = state_of(await open_settings(bot))
        put(state, view.EVENING, selected_time="10:00")
        assert await submit(bot, state) == (200, {})
        done = await tick(bot, clock, at(NY, 2026, 6, 10, 8, 0))  # until the next morning
        assert done == [("evening", dt.date(2026, 6, 9), "sent", False)]
        assert await notices(bot.deps.pool) == []
        payload = await bot.deps.pool.fetchval("SELECT payload FROM outbox WHERE kind = 'report'"
                                               " AND dedupe_key = 'report:evening:2026-06-09'")
        assert "late" not in payload["text"] and "Sent late" not in str(payload["blocks"])


async def test_a_report_time_moved_back_within_the_catch_up_window_is_not_called_late(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Running all day, the evening report moved at 17:00 from 18:00 to 14:00 goes out at once, not labelled as
    sent late "when salespulse was not running"."""
    clock = FakeClock(at(NY, 2026, 6, 9, 9, 0, 30))
    env = {"STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path)}
    before = Reporter(pool=pool, settings=make_settings(**env), slack=None, clock=clock)
    while clock.now < at(NY, 2026, 6, 9, 17, 0):
        await before.run_due()
        clock.advance(minutes=5)
    after = Reporter(pool=pool, settings=make_settings(**env, EVENING_REPORT_AT="14:00"), slack=None, clock=clock)
    assert [(s.slot.kind.value, s.status, s.late) for s in await after.run_due()] == [("evening", "sent", False)]


async def test_changing_the_time_zone_does_not_claim_the_bot_was_down(dsn: str, fake_slack: FakeSlack) -> None:
    """Running all Monday and Tuesday morning in Los Angeles, then at Tuesday 12:00 the zone is set to Asia/Tokyo
    (already Wednesday 04:00 there): no "not running" notice, and Tokyo's Tuesday evening report, 10 hours past
    its time, is not posted as if on time (Los Angeles' Tuesday morning covered those hours); Tokyo's reports then
    go out at their times."""
    clock = FakeClock(at(LA, 2026, 6, 8, 9, 0, 30))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/Los_Angeles",
                         SALESPULSE_ADMINS=ADMIN) as bot:
        done = await tick(bot, clock, at(LA, 2026, 6, 9, 12, 0))
        assert [(kind, day) for kind, day, *_ in done] == [
            ("morning", dt.date(2026, 6, 8)), ("evening", dt.date(2026, 6, 8)), ("morning", dt.date(2026, 6, 9))]
        state = state_of(await open_settings(bot))
        put(state, view.TZ, value="Asia/Tokyo")
        assert await submit(bot, state) == (200, {})
        assert await Reporter.from_deps(bot.deps).run_due() == []
        assert await notices(bot.deps.pool) == []
        done = await tick(bot, clock, at(TOKYO, 2026, 6, 10, 18, 5))
        assert [(kind, day) for kind, day, *_ in done] == [
            ("morning", dt.date(2026, 6, 10)), ("evening", dt.date(2026, 6, 10))]
        assert await notices(bot.deps.pool) == []


async def test_a_report_missed_while_the_bot_was_down_is_still_noted(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """The heartbeat does not hide real downtime: running until 17:00, down until 00:30, the evening report is
    noted as missed (and the job's runs before 18:00 do not count as running at 18:00)."""
    clock = FakeClock(at(NY, 2026, 6, 9, 9, 0, 30))
    r = Reporter(pool=pool, settings=make_settings(STORE_TIMEZONE="America/New_York",
                                                   SALESPULSE_DATA_DIR=str(tmp_path)), slack=None, clock=clock)
    while clock.now < at(NY, 2026, 6, 9, 17, 0):
        await r.run_due()
        clock.advance(minutes=5)
    clock.now = at(NY, 2026, 6, 10, 0, 30)
    assert [(s.slot.kind.value, s.status) for s in await r.run_due()] == [("evening", "missed")]
    assert len(await notices(pool)) == 1


async def run_every_5_minutes(reporter: Reporter, clock: FakeClock, until: dt.datetime) -> list[tuple]:
    done = []
    while clock.now < until:
        done += [(s.slot.kind.value, s.slot.day, s.status) for s in await reporter.run_due()]
        clock.advance(minutes=5)
    return done


async def test_a_report_cut_off_by_an_outage_right_after_its_beat_is_noted_as_missed(
        pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 18:00 run reads its plan and writes its heartbeat, then the host goes down before the report is recorded
    (power cut, OOM kill while rendering the chart). The bot is back 7 hours later, at 01:00: yesterday's evening
    report is past its catch-up window. The job 'ran at its time', but no settings change is known since: the
    report is noted as missed ("was not sent"), not dropped silently as one a settings change put in the past."""
    clock = FakeClock(dt.datetime(2026, 6, 10, 7, 0, tzinfo=dt.UTC))
    settings = make_settings(STORE_TIMEZONE="UTC", SALESPULSE_DATA_DIR=str(tmp_path))
    rep = Reporter(pool=pool, settings=settings, slack=None, clock=clock)
    await run_every_5_minutes(rep, clock, dt.datetime(2026, 6, 10, 18, 0, tzinfo=dt.UTC))
    assert clock.now == dt.datetime(2026, 6, 10, 18, 0, tzinfo=dt.UTC)

    async def crash(*args: object, **kwargs: object) -> None:
        raise ConnectionResetError("host went down")

    monkeypatch.setattr(Reporter, "figures", crash)
    with pytest.raises(ConnectionResetError):
        await rep.run_due()  # the plan read, the heartbeat written, then the crash
    monkeypatch.undo()
    clock.now = dt.datetime(2026, 6, 11, 1, 0, tzinfo=dt.UTC)  # back 7 hours later
    done = await run_every_5_minutes(rep, clock, dt.datetime(2026, 6, 11, 1, 30, tzinfo=dt.UTC))
    assert done == [("evening", dt.date(2026, 6, 10), "missed")], done
    assert len(await notices(pool)) == 1


async def test_a_zone_changed_in_the_environment_still_drops_yesterdays_stale_reports(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Running on Asia/Tokyo since Monday; restarted with STORE_TIMEZONE=America/Los_Angeles on Wednesday at 10:00
    in Los Angeles. LA's Tuesday reports (due while the job ran) were put in the past by the change: Tokyo's reports
    recorded since, due at other times than LA's, say the settings changed after they were due, so they are dropped,
    neither posted as stale news nor noted as missed (no audit tells of a change made in the environment)."""
    clock = FakeClock(at(TOKYO, 2026, 6, 8, 10, 0))
    data = {"SALESPULSE_DATA_DIR": str(tmp_path)}
    tokyo = Reporter(pool=pool, settings=make_settings(STORE_TIMEZONE="Asia/Tokyo", **data), slack=None, clock=clock)
    await run_every_5_minutes(tokyo, clock, at(LA, 2026, 6, 10, 10, 0))
    la = Reporter(pool=pool, settings=make_settings(STORE_TIMEZONE="America/Los_Angeles", **data), slack=None,
                  clock=clock)
    assert await run_every_5_minutes(la, clock, at(LA, 2026, 6, 10, 18, 30)) == [
        ("morning", dt.date(2026, 6, 10), "sent"), ("evening", dt.date(2026, 6, 10), "sent")]
    assert await notices(pool) == []


async def test_an_early_on_demand_evening_report_does_not_cancel_the_real_one(
        dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`salespulse report evening` typed at 10:00 (before its 18:00 time) queues the figures so far, marked so, and
    records nothing: the scheduled 18:00 report still goes out, once."""
    monkeypatch.setattr(cli_report, "DELIVERY_WITHIN", 0.5)  # the fake clock stands still: nothing is posted here
    settings = make_settings(DATABASE_URL=dsn, STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    clock = FakeClock(at(NY, 2026, 6, 9, 10, 0))
    assert await report_command(settings, which="evening", date=None, dry_run=False, clock=clock) == 0
    assert capsys.readouterr().out.strip() == ("Queued the evening report for Tue 9 Jun's figures so far; the running"
                                               " server will post them. The report itself still goes out at 18:00 EDT.")
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        assert await pool.fetchval("SELECT count(*) FROM reports") == 0
        [payload] = await pool.fetch("SELECT payload FROM outbox WHERE kind = 'report_preview'")
        assert "⏳ Made at Tue 10:00, before its time (18:00 EDT): figures so far" in str(payload["payload"])
        clock.now = at(NY, 2026, 6, 9, 18, 0, 30)
        sent = await Reporter(pool=pool, settings=settings, slack=None, clock=clock).run_due()
        assert [(s.slot.kind.value, s.status, s.late) for s in sent] == [("evening", "sent", False)]
    finally:
        await pool.close()


@pytest.mark.parametrize("b_beat_first", [False, True])
async def test_replicas_either_side_of_the_catch_up_deadline_post_one_message(
        pool: asyncpg.Pool, tmp_path: Path, b_beat_first: bool) -> None:
    """Replica B (1 s before an evening report's 6-hour deadline, after an outage) has planned the late report
    when replica A (1 s after the deadline) runs the whole job: the channel gets one message about that report,
    whether or not B's heartbeat landed before A looked."""
    from queries import report_beats

    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    await Reporter(pool=pool, settings=settings, slack=None,  # reports were being sent before the outage
                   clock=lambda: at(NY, 2026, 6, 9, 9, 0, 30)).run_due()
    b = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: at(NY, 2026, 6, 9, 23, 59, 59))
    a = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: at(NY, 2026, 6, 10, 0, 0, 1))
    plans = await b.plan(b.clock())  # B: run_due's read ...
    assert [(p.slot.kind.value, p.missed, p.late) for p in plans if p.slot.day == dt.date(2026, 6, 9)] == [
        ("evening", False, True)]
    if b_beat_first:
        await report_beats.beat(pool, at=b.clock(), keep=dt.timedelta(days=3))
    expected = "sent" if b_beat_first else "missed"  # B was running before the deadline, after all
    assert [s.status for s in await a.run_due()] == [expected]  # ... A's whole run lands here ...
    # ... then B carries on, and finds it recorded (Monday's reports, before any report, are nobody's news)
    assert [await b.carry_out(p) for p in plans] == [None] * len(plans)
    rows = [tuple(r) for r in await pool.fetch(
        "SELECT kind, dedupe_key FROM outbox WHERE kind LIKE 'report%' ORDER BY id")]
    assert [r for r in rows if ":evening:2026-06-09" in r[1]] == [
        ("report" if b_beat_first else "report_missed",
         f"report{'' if b_beat_first else '-missed'}:evening:2026-06-09")]
