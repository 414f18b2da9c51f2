"""Schedule the open-checkouts listing (sessions in progress, which no webhook announces) when STRIPE_API_KEY is
set; without it, nothing."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.stripe.open_checkouts import INTERVAL_SECONDS, OpenCheckoutsJob
from bot.stripe.schedule import schedule_stripe_job


def register(scheduler: AsyncIOScheduler, deps: Deps) -> OpenCheckoutsJob | None:
    """Add the job (first run at start-up) when a key is set."""
    return schedule_stripe_job(scheduler, deps, OpenCheckoutsJob, seconds=INTERVAL_SECONDS,
                               job_id="stripe-open-checkouts", name="Stripe open checkouts")
