"""The report jobs: the morning and evening reports at their local times, plus a catch-up run at start-up
and every few minutes that sends a report the bot was down for and uploads charts once messages are out."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.reports.reporter import Reporter
from bot.reports.schedule import DailyAt, ReportKind, job_id, report_time

log = logging.getLogger(__name__)

CATCH_UP_EVERY: Final = dt.timedelta(minutes=5)
# How long a run waits for its report to be posted before uploading the chart into the thread; a slower
# delivery (Slack rate limits, an outage) leaves the chart to the next catch-up run.
DELIVERY_WAIT_SECONDS: Final = 60.0


async def run_reports(deps: Deps) -> int:
    """Send what is due (each report once per local day), then upload the charts whose message is out."""
    reporter = Reporter.from_deps(deps)
    sent = await reporter.run_due()
    if sent:
        await reporter.wait_delivered(sent, within=DELIVERY_WAIT_SECONDS)
    await reporter.upload_charts()
    return len(sent)


def register(scheduler: AsyncIOScheduler, deps: Deps) -> None:
    """Add the two daily report jobs and the catch-up job (which also runs right away, at start-up)."""
    tz = deps.settings.tz  # a change from Slack's Settings view moves them (bot.reports.schedule.reschedule)
    for kind in ReportKind:
        scheduler.add_job(run_reports, DailyAt(report_time(kind, deps.settings), tz), args=[deps],
                          id=job_id(kind), name=f"{kind.value} report")
    scheduler.add_job(run_reports, "interval", seconds=CATCH_UP_EVERY.total_seconds(), args=[deps],
                      id="report-catch-up", name="report catch-up", next_run_time=deps.clock())
