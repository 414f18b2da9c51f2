"""What a late report says about why it is late, and what its morning calls "yesterday": a first install does not
claim salespulse "was not running" (it never ran before), nor does a report posted by hand; a morning read days
after its day names that day rather than calling it yesterday."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.cli import report as cli_report
from bot.cli.report import report_command
from bot.reports.reporter import Reporter
from tests.conftest import FakeClock, make_settings
from tests.report_seed import at

NY = ZoneInfo("America/New_York")
DOWN = "when salespulse was not running"


def reporter(pool: asyncpg.Pool, tmp_path: Path, clock: FakeClock, **env: str) -> Reporter:
    """A New York store's reporter on `clock`, in local mode (charts saved under tmp_path)."""
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path), **env)
    return Reporter(pool=pool, settings=settings, slack=None, clock=clock)


async def payload(pool: asyncpg.Pool | asyncpg.Connection, key: str) -> tuple[str, str]:
    """(fallback text, blocks as JSON) of the report queued under dedupe key `key`."""
    p = json.loads(await pool.fetchval("SELECT payload::text FROM outbox WHERE dedupe_key = $1", key))
    return p["text"], json.dumps(p["blocks"], ensure_ascii=False)


async def stored(dsn: str, key: str) -> tuple[str, str]:
    """The outbox payload of `key`, read on a connection of its own (the command closed its pool)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await payload(conn, key)
    finally:
        await conn.close()


async def test_a_first_start_after_the_morning_time_does_not_say_salespulse_was_not_running(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Installed and first started Tue 11:40 (no report, no run before): the morning report due at 09:00 does not
    claim the bot "was not running" then; after real downtime later (running until Tue 12:00, back Wed 11:40) the
    next morning still says so."""
    clock = FakeClock(at(NY, 2026, 3, 10, 11, 40))
    r = reporter(pool, tmp_path, clock)
    assert [(s.slot.kind.value, s.status, s.late) for s in await r.run_due()] == [("morning", "sent", True)]
    text, blocks = await payload(pool, "report:morning:2026-03-10")
    assert DOWN not in blocks and "not running" not in text, blocks
    assert "Sent late, at Tue 11:40: due at 09:00 EDT, before salespulse first started" in blocks, blocks
    clock.now = at(NY, 2026, 3, 10, 12, 0)
    assert await r.run_due() == []  # sent once
    clock.now = at(NY, 2026, 3, 11, 11, 40)  # down from Tuesday 12:00
    await r.run_due()
    _, blocks = await payload(pool, "report:morning:2026-03-11")
    assert f"Sent late, at Wed 11:40: due at 09:00 EDT, {DOWN}" in blocks, blocks


async def test_a_report_posted_by_hand_for_a_day_never_recorded_does_not_claim_downtime(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`salespulse report evening --date 2026-12-01` on Thu 3 Dec, that evening never recorded: it says it is late
    and made on demand, not that salespulse was not running at its time (nothing says it was not)."""
    monkeypatch.setattr(cli_report, "DELIVERY_WITHIN", 0.5)  # the fake clock stands still: nothing is posted here
    settings = make_settings(DATABASE_URL=dsn, STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    clock = FakeClock(at(NY, 2026, 12, 3, 12, 0))
    assert await report_command(settings, which="evening", date="2026-12-01", dry_run=False, clock=clock) == 0
    text, blocks = await stored(dsn, "report:evening:2026-12-01")
    assert "(late)" in text and "not running" not in blocks, blocks
    assert "Sent late, at Thu 12:00: due at Tue 1 Dec 18:00 EST, made on demand (`salespulse report`)" in blocks


async def test_a_mornings_yesterday_is_named_when_read_days_later(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Tue 1 Dec's morning report posted by hand on Thu 3 Dec covers Mon 30 Nov: "Mon 30 Nov", not "Yesterday, Mon
    30 Nov" (nor "yesterday" in its text, or "Renewals yesterday"); its dry run the same; Thursday's own morning,
    read on Thursday, still says "Yesterday, Wed 2 Dec"."""
    monkeypatch.setattr(cli_report, "DELIVERY_WITHIN", 0.5)
    settings = make_settings(DATABASE_URL=dsn, STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path),
                             SUBSCRIPTION_RENEWALS="report")
    clock = FakeClock(at(NY, 2026, 12, 3, 12, 0))
    assert await report_command(settings, which="morning", date="2026-12-01", dry_run=True, clock=clock) == 0
    out = capsys.readouterr().out
    assert "*Mon 30 Nov* · against Mon 23 Nov" in out and "esterday" not in out, out
    assert await report_command(settings, which="morning", date="2026-12-01", dry_run=False, clock=clock) == 0
    text, blocks = await stored(dsn, "report:morning:2026-12-01")
    # (Not "esterday": the chart's path, under this test's tmp_path, has it.)
    assert "*Mon 30 Nov* · against Mon 23 Nov" in blocks and "Yesterday" not in blocks, blocks
    assert "Renewals yesterday" not in blocks and "🔄 Renewals Mon 30 Nov: no renewals" in blocks, blocks
    assert "esterday" not in text and "Renewals Mon 30 Nov:" in text, text
    capsys.readouterr()
    assert await report_command(settings, which="morning", date="2026-12-03", dry_run=True, clock=clock) == 0
    assert "*Yesterday, Wed 2 Dec* · against Wed 25 Nov" in capsys.readouterr().out


async def test_a_morning_caught_up_after_midnight_names_its_yesterday(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Morning report at 22:00, evening at 23:00; running Monday, down from Tue 21:00 until Wed 00:30: Tuesday's
    morning, sent late on Wednesday, covers Monday, which is not "yesterday" on Wednesday."""
    clock = FakeClock(at(NY, 2026, 3, 9, 22, 0, 30))
    r = reporter(pool, tmp_path, clock, MORNING_REPORT_AT="22:00", EVENING_REPORT_AT="23:00")
    await r.run_due()
    clock.now = at(NY, 2026, 3, 10, 21, 0)
    await r.run_due()
    clock.now = at(NY, 2026, 3, 11, 0, 30)
    sent = [(s.slot.kind.value, s.slot.day, s.late) for s in await r.run_due()]
    assert ("morning", dt.date(2026, 3, 10), True) in sent, sent
    text, blocks = await payload(pool, "report:morning:2026-03-10")
    assert "*Mon 9 Mar* · against Mon 2 Mar" in blocks and "esterday" not in blocks + text, blocks
    assert DOWN in blocks, blocks
