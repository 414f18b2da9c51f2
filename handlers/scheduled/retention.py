"""Schedule data retention: a tick every hour (the first at start-up) that runs the day's pruning on the one replica
that claims it (bot/retention/)."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.retention.job import Pruned, Retention
from bot.retention.policy import TICK_EVERY


async def run_retention(deps: Deps) -> Pruned | None:
    """The day's retention, if it is due and no replica has run it (None otherwise)."""
    return await Retention.from_deps(deps).tick()


def register(scheduler: AsyncIOScheduler, deps: Deps) -> None:
    """Add the hourly tick."""
    scheduler.add_job(run_retention, "interval", seconds=TICK_EVERY.total_seconds(), args=[deps], id="retention",
                      name="data retention", next_run_time=deps.clock())
