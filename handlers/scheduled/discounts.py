"""Schedule the discounts job (Discounts webhooks named by id, read back for MRR) when STRIPE_API_KEY is set."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.stripe.discount_job import INTERVAL_SECONDS, DiscountJob


def register(scheduler: AsyncIOScheduler, deps: Deps) -> DiscountJob | None:
    """Add the discounts job when a key is set; without one MRR stays before such discounts (and /sales says so)."""
    if deps.settings.stripe_api_key is None:
        return None
    job = DiscountJob(deps)
    scheduler.add_job(job.tick, "interval", seconds=INTERVAL_SECONDS, id="stripe-discounts",
                      name="Stripe subscription discounts", next_run_time=deps.clock())
    return job
