"""Schedule the Stripe Events API poll (first run at start-up, which also reconciles) when a key is set."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.stripe.job import POLL_INTERVAL_SECONDS, StripeSyncJob


def register(scheduler: AsyncIOScheduler, deps: Deps) -> StripeSyncJob | None:
    """Add the poll (first run at start-up, which also reconciles) when STRIPE_API_KEY is set."""
    if deps.settings.stripe_api_key is None:
        return None
    job = StripeSyncJob(deps)
    scheduler.add_job(job.tick, "interval", seconds=POLL_INTERVAL_SECONDS, id="stripe-sync",
                      name="Stripe events sync", next_run_time=deps.clock())
    return job
