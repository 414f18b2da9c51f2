"""Stopping the bot (SIGTERM, Ctrl-C) while a scheduled job is under way cancels the job: that is how a stop goes,
not a failure — no ERROR, no traceback, nothing in /health's failed jobs or the alerts channel."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from handlers.scheduled.reports import run_reports
from tests.conftest import FakeClock, start_bot
from tests.fakes import FakeSlack


async def test_stopping_while_a_late_report_waits_for_delivery_logs_no_error(
        dsn: str, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock(dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC))  # the 09:00 morning report is due, late
    # No delivery worker: the report stays queued, so the job waits for it (wait_delivered) until stopped.
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="UTC") as bot:
        scheduler = bot.deps.scheduler
        assert scheduler is not None
        scheduler.add_job(run_reports, args=[bot.deps], id="report-catch-up", name="report catch-up")  # runs now
        for _ in range(200):
            if any("morning report" in r.getMessage() and "queued" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the catch-up run queued no report")
        await asyncio.sleep(0.3)  # inside wait_delivered's poll
        failures = bot.deps.job_failures
    await asyncio.sleep(0.2)  # the stop (running()'s end) cancelled the job: let it unwind
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors
    assert list(failures.recent) == []
