"""Schedule the Stripe Events API poll (first run at start-up, which also reconciles) when a key is set."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.stripe.job import POLL_INTERVAL_SECONDS, StripeSyncJob
from bot.stripe.schedule import schedule_stripe_job


def register(scheduler: AsyncIOScheduler, deps: Deps) -> StripeSyncJob | None:
    """Add the poll (first run at start-up, which also reconciles) when STRIPE_API_KEY is set."""
    return schedule_stripe_job(scheduler, deps, StripeSyncJob, seconds=POLL_INTERVAL_SECONDS, job_id="stripe-sync",
                               name="Stripe events sync")
