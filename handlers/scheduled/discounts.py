"""Schedule the discounts job (Discounts webhooks named by id, read back for MRR) when STRIPE_API_KEY is set."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.stripe.discount_job import INTERVAL_SECONDS, DiscountJob
from bot.stripe.schedule import schedule_stripe_job


def register(scheduler: AsyncIOScheduler, deps: Deps) -> DiscountJob | None:
    """Add the discounts job when a key is set; without one MRR stays before such discounts (and /sales says so)."""
    return schedule_stripe_job(scheduler, deps, DiscountJob, seconds=INTERVAL_SECONDS, job_id="stripe-discounts",
                               name="Stripe subscription discounts")
