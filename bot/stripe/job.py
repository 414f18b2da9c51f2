"""The Events API job: every minute, on one replica, poll Stripe's events from the cursor; on start-up and
daily, first reconcile the last days. Errors are recorded for /health, never raised into the scheduler; a 401/403 is
logged once and asked again hourly (bot/stripe/refused.py), its record standing in /health meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

import aiohttp

from bot.db import DB_UNAVAILABLE, HOLDER_IDLE_TIMEOUT, HOLDER_PING_SECONDS, connect_lock_holder, keep_pinging
from bot.deps import Deps
from bot.intake.batch import Submission
from bot.intake.result import IntakeResult, Outcome
from bot.stripe.events_api import KeyRejected, Sleep, StripeApi, StripeApiError
from bot.stripe.refused import Refusal
from bot.stripe.sync import RECONCILE_EVERY, EventsSync, Fed
from queries import locks
from queries import stripe_sync as q

log = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 60


class StripeSyncJob:
    """The job's state between runs: when this process last reconciled, and Stripe's refusal if it stands."""

    def __init__(self, deps: Deps, *, sleep: Sleep = asyncio.sleep, ping_every: float = HOLDER_PING_SECONDS,
                 idle_timeout: float = HOLDER_IDLE_TIMEOUT) -> None:
        self.deps = deps
        self.sleep = sleep  # tests record the 429 waits instead of sleeping through them
        # The lock's session is ended by the server after `idle_timeout` s without a statement (a replica whose
        # machine died mid-run closes nothing), so it is pinged every `ping_every` s while the run goes on.
        self.ping_every, self.idle_timeout = ping_every, idle_timeout
        self.reconciled_at: dt.datetime | None = None
        # A 401/403: said once, asked again hourly; /health shows the run's record of it (stripe_sync_state).
        self.refusal = Refusal(log, "Stripe Events API")

    async def tick(self) -> Fed | None:
        """One run; None when skipped (no key, another replica holds the lock, the key refused) or when Stripe
        failed."""
        key = self.deps.settings.stripe_api_key
        if key is None or self.refusal.waiting(self.deps.clock()):
            return None
        # One replica polls at a time (the others skip that minute). The lock must span the Stripe HTTP calls,
        # so it cannot be a transaction-level one (a transaction open across them would hold a pooled
        # connection idle in transaction for minutes); it is session-level, on a connection opened for it alone
        # and closed at the end: closing releases the lock whatever happened — an exception, a failed unlock,
        # a cancelled job — where a lock left on a pooled connection would stop the sync on every replica.
        # Should that connection drop mid-run, another replica may start polling while this one finishes:
        # harmless, as intake stores each event once and the cursor only moves forward.
        conn = await connect_lock_holder(self.deps.dsn, idle_timeout=self.idle_timeout)
        pinging = None
        try:
            if not await locks.try_lock(conn, locks.STRIPE_SYNC):
                return None
            pinging = keep_pinging(conn, every=self.ping_every)
            return await self._run(key.get_secret_value())
        finally:
            if pinging is not None:
                pinging.cancel()
                await asyncio.gather(pinging, return_exceptions=True)
            with contextlib.suppress(*DB_UNAVAILABLE):  # a dead connection's lock is gone with it
                await conn.close(timeout=5)

    async def _run(self, api_key: str) -> Fed | None:
        deps = self.deps
        now = deps.clock()
        fed, looking_back = Fed(), None
        try:
            async with aiohttp.ClientSession() as session:
                api = StripeApi(session, api_key=api_key, base_url=deps.settings.stripe_api_url, sleep=self.sleep)
                sync = EventsSync(db=deps.pool, api=api, submit=self._submit, clock=deps.clock,
                                  webhook_expected=bool(deps.settings.stripe_secrets()))
                if self.reconciled_at is None or now - self.reconciled_at >= RECONCILE_EVERY:
                    try:
                        fed += await sync.reconcile()
                        self.reconciled_at = now
                    except KeyRejected:
                        raise
                    except StripeApiError as exc:  # retried next minute; meanwhile the poll brings what is new
                        looking_back = exc
                fed += await sync.poll()
        except KeyRejected as exc:  # recorded as any failure, logged once
            self.refusal.refused(exc, now)
            await q.record_error(deps.pool, at=now, error=str(exc))
            return None
        except StripeApiError as exc:
            # The cursor has not moved past anything unfed: the next minute's run resumes from it.
            await self._failed(exc, now)
            return None
        self.refusal.answered()
        if looking_back is not None:
            await self._failed(looking_back, now)
        else:
            await q.record_ok(deps.pool, at=now)
        return fed

    async def _failed(self, exc: StripeApiError, now: dt.datetime) -> None:
        log.warning("Stripe Events API: %s", exc)
        await q.record_error(self.deps.pool, at=now, error=str(exc))

    async def _submit(self, sub: Submission) -> IntakeResult:
        """The webhook's own intake, counted in the same metric under the way the event came."""
        result = await self.deps.intake.submit(sub)
        if result.outcome is Outcome.PROCESSED:
            self.deps.home.changed()  # as the webhook does: App Home tabs refresh once the burst settles
        self.deps.metrics.webhook_received(sub.metric_source, sub.event_type, result.outcome.value)
        return result
