"""Schedule the fees job (balance transactions of paid orders) when STRIPE_API_KEY is set; without it, nothing."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.stripe.schedule import schedule_stripe_job
from bot.stripe.settle_job import INTERVAL_SECONDS, SettlementJob


def register(scheduler: AsyncIOScheduler, deps: Deps) -> SettlementJob | None:
    """Add the fees job (first run at start-up, which also reads the account's currency) when a key is set."""
    return schedule_stripe_job(scheduler, deps, SettlementJob, seconds=INTERVAL_SECONDS, job_id="stripe-fees",
                               name="Stripe fees and settlement")
