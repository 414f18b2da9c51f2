"""`salespulse report --date` for a past day: a report recorded already is made as it was, until the time it was due
then whatever the Settings say now (a dry run shows it again, the next morning's night starts there), and one posted
after its time, days later from a "was not sent" notice, says it is late (a reviewer's tests, and the cases around
them)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.cli import report as cli_report
from bot.cli.report import report_command
from bot.db import create_pool
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, slot_for
from queries import reports as q
from tests.conftest import FakeClock, make_settings
from tests.report_seed import History, Order, at, insert

NY = ZoneInfo("America/New_York")


def sale(n: int, when: dt.datetime, amount: int) -> Order:
    return Order(f"pi_past_{n}", "completed", amount, "USD", f"b{n}@x.test", "Course", when)


async def test_dry_run_of_a_past_evening_reproduces_what_was_sent_after_the_time_moved(
        dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tue 1 Dec's evening report went out at 18:00 (2 orders). The owner later moved the evening report to
    17:00 in Settings. `salespulse report evening --date 2026-12-01 --dry-run` should print what was sent (the day
    until 18:00, 2 orders), not a different window (until 17:00, 1 order)."""
    day = dt.date(2026, 12, 1)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await insert(pool, History(orders=[sale(1, at(NY, 2026, 12, 1, 10), 1000),
                                           sale(2, at(NY, 2026, 12, 1, 17, 30), 5000)]))
        data = {"STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path)}
        sent = await Reporter(pool=pool, settings=make_settings(**data), slack=None,
                              clock=lambda: at(NY, 2026, 12, 1, 18, 0, 30)).run_due()
        assert [(s.slot.kind.value, s.status) for s in sent] == [("evening", "sent")]
        payload = await pool.fetchval("SELECT payload::text FROM outbox WHERE kind = 'report'")
        assert "Today until 18:00" in payload and "2 orders" in payload
    finally:
        await pool.close()
    later = make_settings(DATABASE_URL=dsn, EVENING_REPORT_AT="17:00", **data)
    clock = FakeClock(at(NY, 2026, 12, 3, 12, 0))
    assert await report_command(later, which="evening", date=day.isoformat(), dry_run=True, clock=clock) == 0
    out = capsys.readouterr().out
    # Printed on Thursday, that day is no longer "Today" (as sent): it is named.
    assert "Tue 1 Dec until 18:00" in out, out
    assert "2 orders" in out, out


async def test_dry_run_of_a_past_morning_ends_its_night_where_the_report_did(
        dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Wed 2 Dec's morning report went out at 09:00, its night ending there (an order at 08:30 in it); the morning
    time moved to 08:00 since. Its dry run still ends the night at 09:00, with that order."""
    data = {"STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path)}
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await insert(pool, History(orders=[sale(1, at(NY, 2026, 12, 2, 8, 30), 4200)]))
        sent = await Reporter(pool=pool, settings=make_settings(**data), slack=None,
                              clock=lambda: at(NY, 2026, 12, 2, 9, 0, 30)).run_due()
        assert [(s.slot.kind.value, s.status) for s in sent] == [("morning", "sent")]
    finally:
        await pool.close()
    later = make_settings(DATABASE_URL=dsn, MORNING_REPORT_AT="08:00", **data)
    clock = FakeClock(at(NY, 2026, 12, 3, 12, 0))
    assert await report_command(later, which="morning", date="2026-12-02", dry_run=True, clock=clock) == 0
    out = capsys.readouterr().out
    assert "→ Wed 09:00" in out and "$42.00" in out, out


async def test_a_missed_evening_posted_days_later_from_the_notice_says_it_is_late(pool: asyncpg.Pool,
                                                                                 tmp_path: Path) -> None:
    """Tue 1 Dec's evening report was noted "was not sent"; on Thu 3 Dec the owner runs the command the notice
    gave (`salespulse report evening --date 2026-12-01`, which records it with source "cli"). The message posted on
    Thursday should say it comes late (as a late report after downtime does), not read as that evening's report."""
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    await insert(pool, History(orders=[sale(1, at(NY, 2026, 12, 1, 10), 1000)]))
    await Reporter(pool=pool, settings=settings, slack=None,  # reports ran before: the notice is due
                   clock=lambda: at(NY, 2026, 11, 30, 18, 0, 30)).run_due()
    down = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: at(NY, 2026, 12, 2, 1, 0))
    sent = await down.run_due()
    assert ("evening", dt.date(2026, 12, 1), "missed") in [(s.slot.kind.value, s.slot.day, s.status) for s in sent]
    thursday = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: at(NY, 2026, 12, 3, 12, 0))
    got = await thursday.send(slot_for(ReportKind.EVENING, dt.date(2026, 12, 1), settings), source="cli")
    assert got is not None and got.late
    payload = await pool.fetchval("SELECT payload::text FROM outbox WHERE id = $1", got.outbox_id)
    assert "late" in payload.lower() or "Thu" in payload, payload
    assert "Sent late, at Thu 12:00: due at Tue 1 Dec 18:00 EST" in payload, payload


async def test_a_missed_evening_posted_after_its_time_moved_covers_what_its_notice_named(
        dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot was down through Tue 1 Dec's 18:00 evening report (noted as missed, due at 18:00); Wednesday's
    morning night started at 18:00. The evening time is moved to 17:00, then on Thursday the notice's command posts
    Tuesday's evening: until 18:00 (the 17:30 order in it, as in no other report), late, and still recorded as due
    at 18:00."""
    monkeypatch.setattr(cli_report, "DELIVERY_WITHIN", 0.5)  # the fake clock stands still: nothing is posted here
    data = {"STORE_TIMEZONE": "America/New_York", "SALESPULSE_DATA_DIR": str(tmp_path)}
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await insert(pool, History(orders=[sale(1, at(NY, 2026, 12, 1, 10), 1000),
                                           sale(2, at(NY, 2026, 12, 1, 17, 30), 5000)]))
        for now in (at(NY, 2026, 11, 30, 18, 0, 30), at(NY, 2026, 12, 2, 9, 0, 30)):
            await Reporter(pool=pool, settings=make_settings(**data), slack=None, clock=FakeClock(now)).run_due()
        later = make_settings(DATABASE_URL=dsn, EVENING_REPORT_AT="17:00", **data)
        clock = FakeClock(at(NY, 2026, 12, 3, 12, 0))
        assert await report_command(later, which="evening", date="2026-12-01", dry_run=False, clock=clock) == 0
        payload = json.loads(await pool.fetchval(
            "SELECT payload::text FROM outbox WHERE kind = 'report' AND dedupe_key = 'report:evening:2026-12-01'"))
        row = next(r for r in await q.recorded(pool, days=[dt.date(2026, 12, 1)]) if r.kind == "evening")
    finally:
        await pool.close()
    blocks = json.dumps(payload["blocks"], ensure_ascii=False)
    assert "Tue 1 Dec until 18:00 EST" in blocks and "2 orders" in payload["text"], payload
    assert "(late)" in payload["text"] and "due at Tue 1 Dec 18:00 EST" in blocks, payload
    assert (row.status, row.source, row.late, row.scheduled_at) == ("sent", "cli", True, at(NY, 2026, 12, 1, 18))
