"""Schedule the open-checkouts listing (sessions in progress, which no webhook announces) when STRIPE_API_KEY is
set; without it, nothing."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.stripe.open_checkouts import INTERVAL_SECONDS, OpenCheckoutsJob


def register(scheduler: AsyncIOScheduler, deps: Deps) -> OpenCheckoutsJob | None:
    """Add the job (first run at start-up) when a key is set."""
    if deps.settings.stripe_api_key is None:
        return None
    job = OpenCheckoutsJob(deps)
    scheduler.add_job(job.tick, "interval", seconds=INTERVAL_SECONDS, id="stripe-open-checkouts",
                      name="Stripe open checkouts", next_run_time=deps.clock())
    return job
