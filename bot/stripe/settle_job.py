"""The fees job: every few seconds, read the Stripe figures of a small batch of queued orders.

It runs beside intake, never in front of it: a sale is stored and pinged first; its balance transactions are
read afterwards, on whichever replica claims them (a lease per batch, queries/settlements.py), one request at a
time. A 429 stops the batch and waits (Retry-After); 5xx, timeouts and not-yet-settled payments back off per
order; errors are logged and kept on the queue row, never raised into the scheduler. A 401/403 is logged once and
the job asks again hourly (bot/stripe/refused.py). No key, no job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import aiohttp
import asyncpg

from bot.deps import Deps
from bot.stripe import settle, settle_walk
from bot.stripe.events_api import KeyRejected, Sleep, StripeApi, StripeApiError, Unavailable
from bot.stripe.refused import Refusal
from queries import settled_currency
from queries import settlements as q
from queries.settlements import Claim

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 10
BATCH = 20  # orders per run: at most ~40 requests, far below Stripe's 100 reads/s in live mode
LEASE = dt.timedelta(minutes=5)  # a batch not reported back by then is claimed again
RECENT = dt.timedelta(hours=2)  # each run looks for new sales, refunds and disputes this far back
RECONCILE = dt.timedelta(days=30)  # on start-up and daily: every order of the last 30 days without figures
RECONCILE_EVERY = dt.timedelta(days=1)
MAX_ATTEMPTS = 12  # backoff 1 min doubling to 6 h: about two days of tries before giving up
FOREVER = dt.datetime.max.replace(tzinfo=dt.UTC)  # asyncpg stores it as 'infinity': given up until revived
# Given up, an order gets one more try a day at the daily reconciliation while its sale is in RECONCILE (a refund or
# dispute after it revives it at once: queries/settlements.py REREAD). One request per such order a day, claimed
# BATCH at a time like any other: no storm when an outage ends.
REVIVE_AFTER = dt.timedelta(days=1)


def backoff(attempts: int) -> dt.timedelta:
    """The wait before try number `attempts + 1`: one minute, doubling, at most six hours."""
    return min(dt.timedelta(minutes=1) * 2 ** min(attempts, 20), dt.timedelta(hours=6))


class SettlementJob:
    """The fees job's state between runs: when it last looked back 30 days and read the account."""

    def __init__(self, deps: Deps, *, sleep: Sleep = asyncio.sleep) -> None:
        self.deps = deps
        self.sleep = sleep
        self.reconciled_at: dt.datetime | None = None
        # A 401/403: said once, asked again hourly, shown in /health meanwhile.
        self.refusal = Refusal(log, "Stripe fees", shown=deps.refusals)

    async def tick(self) -> int | None:
        """One run: queue what changed, read a batch; how many orders got figures (None without a key)."""
        key = self.deps.settings.stripe_api_key
        if key is None:
            return None
        deps, now = self.deps, self.deps.clock()
        if self.refusal.waiting(now):  # an hour, shorter than RECENT: what changed meanwhile is queued after
            return 0
        reconcile = self.reconciled_at is None or now - self.reconciled_at >= RECONCILE_EVERY
        store = deps.settings.store_currency or await q.account_currency(deps.pool)
        await self._walk(store, now)
        await q.enqueue(deps.pool, since=now - (RECONCILE if reconcile else RECENT), now=now)
        if reconcile:
            await self._revive(now, store)
        try:
            async with aiohttp.ClientSession() as session:
                api = StripeApi(session, api_key=key.get_secret_value(), base_url=deps.settings.stripe_api_url,
                                sleep=self.sleep)
                asked = reconcile and await self._read_account(api)  # whether Stripe was asked for the account
                if reconcile:
                    self.reconciled_at = now
                done, claimed = await self._batch(api, now)
        except KeyRejected as exc:
            self.refusal.refused(exc, now)
            return 0
        except StripeApiError as exc:
            log.warning("Stripe fees: %s", exc)
            return 0
        if asked or claimed:
            self.refusal.answered()
        return done

    async def _walk(self, store: str | None, now: dt.datetime) -> None:
        """Before any Stripe request (a changed STORE_CURRENCY applies while Stripe is down): figures in another
        currency than the store's set aside, those set aside in it back (bot/stripe/settle_walk.py)."""
        walked = await settle_walk.walk(self.deps.pool, store=store, now=now, attempts=MAX_ATTEMPTS)
        if walked.aside or walked.back:
            self.deps.home.changed()

    async def _revive(self, now: dt.datetime, store: str | None) -> None:
        """Orders given up on, not tried for a day: one more try each (REVIVE_AFTER), but those that settled in
        another currency than `store` (they would again)."""
        revived = await q.revive(self.deps.pool, now=now, since=now - RECONCILE, tried_before=now - REVIVE_AFTER,
                                 attempts=MAX_ATTEMPTS - 1, store=store)
        if revived:
            log.info("Stripe fees: %d order(s) given up on are tried once more", revived)

    async def _read_account(self, api: StripeApi) -> bool:
        """The account's default currency, which is the store currency unless STORE_CURRENCY names one (then the
        account is never read: a restricted key needs no Account permission); whether it was read."""
        if self.deps.settings.store_currency is not None:
            return False
        try:
            currency = await settle.account_currency(api)
        except KeyRejected as exc:
            raise KeyRejected(f"{exc} (or set STORE_CURRENCY: the account is then never read)", status=exc.status,
                              code=exc.code, permission=exc.permission) from exc
        if currency is not None:
            await q.save_account(self.deps.pool, currency=currency, at=self.deps.clock())
        return True

    async def _batch(self, api: StripeApi, now: dt.datetime) -> tuple[int, int]:
        done, claimed = await settle_due(self.deps.pool, api, store=self.deps.settings.store_currency, now=now)
        if done:
            self.deps.home.changed()
        return done, claimed


async def settle_due(pool: asyncpg.Pool, api: StripeApi, *, store: str | None, now: dt.datetime) -> tuple[int, int]:
    """Claim a batch of due orders and read their figures; (orders settled, orders claimed). Only figures in the store
    currency count — `store` (STORE_CURRENCY), else the account's as last read; others are set aside and the order
    given up on. A 429 or a rejected key puts the rest of the batch back untouched and raises."""
    store = store or await q.account_currency(pool)
    claims = await q.claim(pool, now=now, lease_until=now + LEASE, limit=BATCH)
    done = 0
    for index, claim in enumerate(claims):
        try:
            figures = await settle.read(api, claim)
        except (KeyRejected, Unavailable) as exc:
            if isinstance(exc, KeyRejected) or exc.status == 429:  # the rest of the batch would fail too
                for rest in claims[index:]:
                    await q.retry(pool, order_id=rest.order_id, due_at=now + backoff(0), error=str(exc),
                                  at=now, attempt=False)
                raise
            await _failed(pool, claim, now, str(exc))
            continue
        except (settle.NotSettled, StripeApiError) as exc:
            await _failed(pool, claim, now, str(exc))
            continue
        if store is not None and figures.currency != store:
            async with pool.acquire() as conn, conn.transaction():
                await settled_currency.set_aside(conn, claim=claim, figures=figures, at=now)
                await q.retry(conn, order_id=claim.order_id, due_at=FOREVER, at=now,
                              error=f"settled in {figures.currency}, not the store currency {store}")
            continue
        async with pool.acquire() as conn, conn.transaction():
            await q.record(conn, claim=claim, figures=figures, at=now)
        done += 1
    return done, len(claims)


async def _failed(pool: asyncpg.Pool, claim: Claim, now: dt.datetime, error: str) -> None:
    give_up = claim.attempts + 1 >= MAX_ATTEMPTS
    log.info("Stripe fees of %s: %s (attempt %d%s)", claim.order_id, error, claim.attempts + 1,
             ", giving up" if give_up else "")
    await q.retry(pool, order_id=claim.order_id, error=error, at=now,
                  due_at=FOREVER if give_up else now + backoff(claim.attempts))
