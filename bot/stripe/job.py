"""The Events API job: every minute, on one replica, poll Stripe's events from the cursor; on start-up and
daily, first reconcile the last days. Errors are recorded for /health, never raised into the scheduler."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import aiohttp

from bot.deps import Deps
from bot.intake.batch import Submission
from bot.intake.result import IntakeResult, Outcome
from bot.stripe.events_api import KeyRejected, Sleep, StripeApi, StripeApiError
from bot.stripe.sync import RECONCILE_EVERY, EventsSync, Fed
from queries import stripe_sync as q

log = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 60
# One replica polls at a time (the others skip that minute); the key sits next to the alert engine's.
SYNC_LOCK_KEY = 0x73616C6573 + 3


class StripeSyncJob:
    """The job's state between runs: when this process last reconciled."""

    def __init__(self, deps: Deps, *, sleep: Sleep = asyncio.sleep) -> None:
        self.deps = deps
        self.sleep = sleep  # tests record the 429 waits instead of sleeping through them
        self.reconciled_at: dt.datetime | None = None

    async def tick(self) -> Fed | None:
        """One run; None when skipped (no key, another replica holds the lock) or when Stripe failed."""
        key = self.deps.settings.stripe_api_key
        if key is None:
            return None
        async with self.deps.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SYNC_LOCK_KEY):
                return None
            try:
                return await self._run(key.get_secret_value())
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", SYNC_LOCK_KEY)

    async def _run(self, api_key: str) -> Fed | None:
        deps = self.deps
        now = deps.clock()
        fed = Fed()
        try:
            async with aiohttp.ClientSession() as session:
                api = StripeApi(session, api_key=api_key, base_url=deps.settings.stripe_api_url, sleep=self.sleep)
                sync = EventsSync(db=deps.pool, api=api, submit=self._submit, clock=deps.clock,
                                  webhook_expected=bool(deps.settings.stripe_secrets()))
                if self.reconciled_at is None or now - self.reconciled_at >= RECONCILE_EVERY:
                    fed += await sync.reconcile()
                    self.reconciled_at = now
                fed += await sync.poll()
        except StripeApiError as exc:
            # The cursor has not moved past anything unfed: the next minute's run resumes from it.
            (log.error if isinstance(exc, KeyRejected) else log.warning)("Stripe Events API: %s", exc)
            await q.record_error(deps.pool, at=now, error=str(exc))
            return None
        finally:
            deps.worker.wake.set()  # whatever was fed before a failure is delivered now
        await q.record_ok(deps.pool, at=now)
        return fed

    async def _submit(self, sub: Submission) -> IntakeResult:
        """The webhook's own intake, counted in the same metric under the way the event came."""
        result = await self.deps.intake.submit(sub)
        if result.outcome is Outcome.PROCESSED:
            self.deps.home.changed()  # as the webhook does: App Home tabs refresh once the burst settles
        self.deps.metrics.webhooks.labels(source=f"stripe_{sub.via}", type=sub.event_type[:60],
                                          outcome=result.outcome.value).inc()
        return result
