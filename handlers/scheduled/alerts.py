"""Schedule the alert cycle: rule evaluation every ALERT_CHECK_INTERVAL_SECONDS and the site probe every minute."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.alerts.jobs import PROBE_INTERVAL_SECONDS, AlertJobs
from bot.alerts.leader import Leadership
from bot.deps import Deps


def register(scheduler: AsyncIOScheduler, deps: Deps, *, dsn: str) -> AlertJobs:
    """Add the evaluation and probe jobs."""
    jobs = AlertJobs(deps, leadership=Leadership(dsn))
    scheduler.add_job(jobs.tick, "interval", seconds=deps.settings.alert_check_interval_seconds,
                      id="alerts", name="alert evaluation", next_run_time=deps.clock())
    if deps.settings.site_url:
        scheduler.add_job(jobs.probe_tick, "interval", seconds=PROBE_INTERVAL_SECONDS,
                          id="site-probe", name="site probe", next_run_time=deps.clock())
    return jobs
