"""A message about a report that a newer word on the same report made stale while it waited in the outbox (Slack
down, the channel paced) is never posted after that word: early figures after the report itself, older figures
after newer ones, a "was not sent" notice after the report sent on demand."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.blocks.reports import day_label
from bot.cli import report as cli_report
from bot.cli.report import report_command
from bot.clock import Clock
from bot.db import create_pool
from bot.reports.reporter import Reporter, period, preview_prefix
from bot.reports.schedule import ReportKind, slot_for
from queries import outbox, report_periods
from queries import reports as q
from tests.conftest import Bot, FakeClock, make_settings, start_bot
from tests.fakes import FakeSlack, Fault
from tests.report_seed import at

NY = ZoneInfo("America/New_York")
TUESDAY = dt.date(2026, 6, 9)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def said(slack: FakeSlack) -> list[str]:
    """What the reports channel got, in order: "early" (figures so far, with the hour made), "notice" or "report"."""
    out = []
    for post in slack.posted():
        blocks = json.dumps(post.get("blocks"), ensure_ascii=False)
        made = blocks.split("⏳ Made at ")[1][:9] if "before its time" in blocks else None
        out.append(f"early {made}" if made else "notice" if "was not sent" in post["text"] else "report")
    return out


def slack_down(slack: FakeSlack) -> None:
    """Every call answers 503 until `slack_back`."""
    slack.chaos = lambda _method: Fault(503)


async def pace(bot: Bot, next_post_at: dt.datetime) -> None:
    """When the reports channel may be posted to next (the epoch: at once, whatever the test clock says)."""
    await bot.deps.pool.execute("INSERT INTO channel_pace (channel, next_post_at) VALUES ('reports', $1)"
                                " ON CONFLICT (channel) DO UPDATE SET next_post_at = excluded.next_post_at",
                                next_post_at)


async def failing_pass(bot: Bot, *, retry_later: bool) -> None:
    """One delivery pass while Slack is down; `retry_later`: the failed message's next try comes after whatever is
    queued next is due (set in the database's time: the test clock stands months before its now())."""
    await bot.drain(until_idle=False, ignore_pace=True)
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts > 0") == 1
    if retry_later:
        await bot.deps.pool.execute("UPDATE outbox SET available_at = now() + interval '1 hour'"
                                    " WHERE status = 'pending'")


async def slack_back(bot: Bot) -> None:
    """Slack answers again: what is due goes out, then what waited for its backoff."""
    bot.slack_api.chaos = None
    await bot.drain(until_idle=False, ignore_pace=True)
    await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    await bot.drain(ignore_pace=True)


async def statuses(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    """(kind, status) of each message queued for the reports channel, in order."""
    rows = await pool.fetch("SELECT kind, status FROM outbox WHERE channel = 'reports' ORDER BY id")
    return [(r["kind"], r["status"]) for r in rows]


@pytest.mark.parametrize("retry_later", [False, True])
async def test_early_figures_queued_while_slack_is_down_never_follow_the_report(
        dsn: str, fake_slack: FakeSlack, retry_later: bool) -> None:
    """Figures so far queued at 10:00 while Slack is down, the 18:00 report queued, Slack back: only the report is
    posted, whether the early one's next try came before the report's or after it."""
    clock = FakeClock(at(NY, 2026, 6, 9, 10, 0))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        reporter = Reporter.from_deps(bot.deps)
        await pace(bot, EPOCH)
        slack_down(fake_slack)
        assert await reporter.preview(slot_for(ReportKind.EVENING, TUESDAY, reporter.settings)) is not None
        await failing_pass(bot, retry_later=retry_later)
        clock.now = at(NY, 2026, 6, 9, 18, 0, 30)
        assert [(s.slot.kind.value, s.status) for s in await reporter.run_due()] == [("evening", "sent")]
        await slack_back(bot)
        assert said(fake_slack) == ["report"]
        assert await statuses(bot.deps.pool) == [("report_preview", "superseded"), ("report", "delivered")]


async def test_early_figures_waiting_for_a_paced_channel_give_way_to_the_report(dsn: str,
                                                                                fake_slack: FakeSlack) -> None:
    """Figures so far waiting for the channel's slot when the report is queued are not posted: the report is."""
    clock = FakeClock(at(NY, 2026, 6, 9, 17, 59, 50))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        reporter = Reporter.from_deps(bot.deps)
        await pace(bot, at(NY, 2026, 6, 9, 18, 1))  # a 429's Retry-After, say
        assert await reporter.preview(slot_for(ReportKind.EVENING, TUESDAY, reporter.settings)) is not None
        await bot.deps.worker.drain()
        assert fake_slack.posted() == []
        clock.now = at(NY, 2026, 6, 9, 18, 0, 30)
        assert len(await reporter.run_due()) == 1
        await bot.drain(ignore_pace=True)
        assert said(fake_slack) == ["report"]


async def test_newer_early_figures_replace_older_ones_still_waiting(dsn: str, fake_slack: FakeSlack) -> None:
    """Figures so far of 10:00 still waiting for Slack when those of 11:00 are queued: only the 11:00 ones are
    posted, never the older after the newer; the report still goes out at its time."""
    clock = FakeClock(at(NY, 2026, 6, 9, 10, 0))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        reporter = Reporter.from_deps(bot.deps)
        await pace(bot, EPOCH)
        slot = slot_for(ReportKind.EVENING, TUESDAY, reporter.settings)
        slack_down(fake_slack)
        assert await reporter.preview(slot) is not None
        await failing_pass(bot, retry_later=True)
        clock.now = at(NY, 2026, 6, 9, 11, 0)
        assert await reporter.preview(slot) is not None
        await slack_back(bot)
        assert said(fake_slack) == ["early Tue 11:00"]
        clock.now = at(NY, 2026, 6, 9, 18, 0, 30)
        assert len(await reporter.run_due()) == 1
        await bot.drain(ignore_pace=True)
        assert said(fake_slack) == ["early Tue 11:00", "report"]
        assert await statuses(bot.deps.pool) == [("report_preview", "superseded"), ("report_preview", "delivered"),
                                                 ("report", "delivered")]


async def test_a_missed_notice_still_waiting_gives_way_to_the_report_sent_on_demand(dsn: str,
                                                                                   fake_slack: FakeSlack) -> None:
    """The "was not sent" notice of an evening report, queued while Slack is down, then the report itself sent with
    `salespulse report` (as the notice suggests): Slack back, the channel gets the report, not the notice after it."""
    clock = FakeClock(at(NY, 2026, 6, 9, 9, 0, 30))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        reporter = Reporter.from_deps(bot.deps)
        await pace(bot, EPOCH)
        assert len(await reporter.run_due()) == 1  # reports were being sent before the outage
        await bot.drain(ignore_pace=True)
        fake_slack.calls.clear()
        clock.now = at(NY, 2026, 6, 10, 0, 30)  # down from before 18:00 until after the 6-hour window
        slack_down(fake_slack)
        assert [(s.slot.kind.value, s.status) for s in await reporter.run_due()] == [("evening", "missed")]
        await failing_pass(bot, retry_later=True)
        clock.now = at(NY, 2026, 6, 10, 0, 40)
        assert await reporter.send(slot_for(ReportKind.EVENING, TUESDAY, reporter.settings), source="cli")
        await slack_back(bot)
        assert said(fake_slack) == ["report"]
        assert (await statuses(bot.deps.pool))[1:] == [("report_missed", "superseded"), ("report", "delivered")]


async def test_cli_early_report_after_the_report_went_out_posts_nothing(
        dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The evening report went out at 14:00, then its time moved to 18:00 in Settings: `salespulse report evening`
    at 15:00 says it was posted and queues no figures so far, which would come after it."""
    monkeypatch.setattr(cli_report, "DELIVERY_WITHIN", 0.5)  # the fake clock stands still: nothing is posted here
    env = {"DATABASE_URL": dsn, "STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path)}
    clock = FakeClock(at(NY, 2026, 6, 9, 14, 0, 30))
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        early = Reporter(pool=pool, settings=make_settings(**env, EVENING_REPORT_AT="14:00"), slack=None, clock=clock)
        assert ("evening", "sent") in [(s.slot.kind.value, s.status) for s in await early.run_due()]
        clock.now = at(NY, 2026, 6, 9, 15, 0)
        assert await report_command(make_settings(**env), which="evening", date=None, dry_run=False,
                                    clock=clock) == 0
        assert capsys.readouterr().out.strip() == (
            "The evening report for Tue 9 Jun was already posted at Tue 09 Jun 14:00, by the scheduler: each report"
            " goes out once per day. Use --dry-run to see it again.")
        assert await pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'report_preview'") == 0
    finally:
        await pool.close()


def ny_reporter(pool: asyncpg.Pool, tmp_path: Path, clock: Clock) -> Reporter:
    """A New York store's reporter on this clock, without Slack (charts saved under `tmp_path`)."""
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    return Reporter(pool=pool, settings=settings, slack=None, clock=clock)


async def waiting_or_done(pool: asyncpg.Pool, task: asyncio.Task[Any]) -> None:
    """Until `task` waits for an advisory lock, or has finished without one."""
    for _ in range(500):
        if task.done() or await pool.fetchval("SELECT count(*) FROM pg_locks"
                                              " WHERE locktype = 'advisory' AND NOT granted"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("neither waiting nor done")


async def test_early_figures_queued_as_the_report_is_recorded_wait_for_it(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """The report of the period being recorded (its transaction still open) when figures so far are asked for: they
    wait for it, then see it and queue nothing (unseen, they would go out after the report)."""
    r = ny_reporter(pool, tmp_path, lambda: at(NY, 2026, 6, 9, 17, 59, 59))
    slot = slot_for(ReportKind.EVENING, TUESDAY, r.settings)
    async with pool.acquire() as conn:
        async with conn.transaction():  # the report's transaction, as Reporter.send runs it
            await report_periods.lock_period(conn, period=period(slot))
            assert await q.record(conn, kind="evening", local_date=TUESDAY, status="sent", late=False,
                                  scheduled_at=slot.scheduled_at, recorded_at=slot.scheduled_at, source="scheduler",
                                  chart_status="none", chart_png=None)
            early = asyncio.create_task(r.preview(slot))
            await waiting_or_done(pool, early)
        assert await early is None
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_report_recorded_as_early_figures_are_queued_waits_and_sets_them_aside(pool: asyncpg.Pool,
                                                                                      tmp_path: Path) -> None:
    """Figures so far being queued (their transaction still open) when the report of the period is recorded: the
    report waits for them, then sets them aside (unseen, they would stay queued and go out after it)."""
    r = ny_reporter(pool, tmp_path, lambda: at(NY, 2026, 6, 9, 18, 0, 30))
    slot = slot_for(ReportKind.EVENING, TUESDAY, r.settings)
    async with pool.acquire() as conn:
        async with conn.transaction():  # the early figures' transaction, as Reporter.preview runs it
            await report_periods.lock_period(conn, period=period(slot))
            await outbox.enqueue(conn, dedupe_key=f"{preview_prefix(slot)}2026-06-09T21:59:00+00:00",
                                 channel="reports", kind="report_preview", payload={"text": "figures so far"})
            report = asyncio.create_task(r.send(slot, source="scheduler"))
            await waiting_or_done(pool, report)
        assert await report is not None
    assert [tuple(row) for row in await pool.fetch("SELECT kind, status FROM outbox ORDER BY id")] == [
        ("report_preview", "superseded"), ("report", "pending")]


async def test_early_figures_still_waiting_when_the_report_is_noted_missed_are_set_aside(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Figures so far queued at 10:00 and still waiting (Slack down) when the bot, down since, notes the evening report
    as missed: the notice goes, the early figures never follow it."""
    clock = FakeClock(at(NY, 2026, 6, 9, 9, 0, 30))
    r = ny_reporter(pool, tmp_path, clock)
    assert len(await r.run_due()) == 1  # reports were being sent before the outage
    clock.now = at(NY, 2026, 6, 9, 10, 0)
    assert await r.preview(slot_for(ReportKind.EVENING, TUESDAY, r.settings)) is not None
    clock.now = at(NY, 2026, 6, 10, 0, 30)
    assert [(s.slot.kind.value, s.status) for s in await r.run_due()] == [("evening", "missed")]
    assert (await statuses(pool))[1:] == [("report_preview", "superseded"), ("report_missed", "pending")]


async def test_cli_says_when_its_early_figures_gave_way_to_the_report(
        dsn: str, tmp_path: Path, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    """`salespulse report` waiting for Slack to take its figures so far when the report itself is queued says they
    were not posted, and why (exit 0: nothing went wrong)."""
    monkeypatch.chdir(tmp_path)
    env = {"DATABASE_URL": dsn, "STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path),
           "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": fake_slack.url}
    slack_down(fake_slack)
    tomorrow = dt.datetime.now(NY).date() + dt.timedelta(days=1)
    out = io.StringIO()
    cli = asyncio.create_task(report_command(make_settings(**env), which="evening", date=f"{tomorrow}",
                                             dry_run=False, out=out))
    async with await create_pool(dsn, min_size=1, max_size=2) as pool:
        for _ in range(500):  # its first try failed: it waits for the retry
            if await pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'report_preview' AND attempts > 0"):
                break
            await asyncio.sleep(0.02)
        r = Reporter(pool=pool, settings=make_settings(**env), slack=None, clock=lambda: dt.datetime.now(dt.UTC))
        assert await r.send(slot_for(ReportKind.EVENING, tomorrow, r.settings), source="scheduler") is not None
        assert await cli == 0
    assert out.getvalue().strip() == (f"The figures so far of the evening report for {day_label(tomorrow)} were not"
                                      " posted: newer ones, or the report itself, were queued meanwhile.")
    assert fake_slack.posted() == []
