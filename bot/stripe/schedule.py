"""Scheduling a Stripe API job: only with STRIPE_API_KEY set, every `seconds`, the first run at start-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deps import Deps


class StripeJob(Protocol):
    """A job that reads the Stripe API: one run per tick."""

    async def tick(self) -> Any: ...


Job = TypeVar("Job", bound=StripeJob)


def schedule_stripe_job(scheduler: AsyncIOScheduler, deps: Deps, make: Callable[[Deps], Job], *, seconds: float,
                        job_id: str, name: str) -> Job | None:
    """Add the job made by `make` when a key is set (first run now); without one, nothing: None."""
    if deps.settings.stripe_api_key is None:
        return None
    job = make(deps)
    scheduler.add_job(job.tick, "interval", seconds=seconds, id=job_id, name=name, next_run_time=deps.clock())
    return job
