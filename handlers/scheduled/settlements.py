"""Schedule the fees job (balance transactions of paid orders) when STRIPE_API_KEY is set; without it, nothing."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps
from bot.stripe.settle_job import INTERVAL_SECONDS, SettlementJob


def register(scheduler: AsyncIOScheduler, deps: Deps) -> SettlementJob | None:
    """Add the fees job (first run at start-up, which also reads the account's currency) when a key is set."""
    if deps.settings.stripe_api_key is None:
        return None
    job = SettlementJob(deps)
    scheduler.add_job(job.tick, "interval", seconds=INTERVAL_SECONDS, id="stripe-fees",
                      name="Stripe fees and settlement", next_run_time=deps.clock())
    return job
