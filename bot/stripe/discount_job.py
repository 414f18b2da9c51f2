"""The discounts job: every few seconds, read the Discounts that webhooks named by id only, and recompute MRR.

It runs beside intake, never in front of it (as the fees job, bot/stripe/settle_job.py): a subscription's snapshot
is stored at intake with its MRR before such Discounts and marked pending; here a small batch of subscriptions is
leased (queries/discounts.py), each Discount read once and cached by id, and the pending snapshots' MRR (and MRR
before them) recomputed at their own time, so the ledger, /sales and the report count the discount. A 429 stops the
batch; 5xx and timeouts back off per subscription; errors are logged, never raised into the scheduler. A 401/403 is
logged once and the job asks again hourly (bot/stripe/refused.py), shown in /health meanwhile. No key, no job.
Messages already sent with an MRR before such Discounts are not edited. Tiered prices, which webhooks send without
their tiers, are read here too (GET /v1/prices/{id}?expand[]=tiers, bot/stripe/tiers.py), once per price id: their
tiers cannot change; the pings that said their MRR was being computed are told it (bot/subscriptions/late_mrr.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

from bot.deps import Deps
from bot.stripe import discounts, second_order, tiers
from bot.stripe.events_api import KeyRejected, Sleep, StripeApi, StripeApiError, Unavailable
from bot.stripe.refused import Refusal
from bot.stripe.settle_job import FOREVER, MAX_ATTEMPTS, backoff
from bot.subscriptions import late_mrr
from bot.subscriptions.pricing import Terms, ids_of, mrr_of
from queries import discounts as q
from queries import intake as intake_q
from queries.mrr import TiersUnread

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 10
JOB = "Stripe discounts"  # its name in /health's refusals
BATCH = 20  # subscriptions per run: one request each, plus one per coupon not yet read (clover)
LEASE = dt.timedelta(minutes=5)


class DiscountJob:
    """Runs the discounts job with the bot's Deps."""

    def __init__(self, deps: Deps, *, sleep: Sleep = asyncio.sleep) -> None:
        self.deps = deps
        self.sleep = sleep
        self.tiers: dict[str, tiers.Tiers | None] = {}  # by price id: a price's tiers never change
        # A 401/403: said once, asked again hourly, shown in /health meanwhile.
        self.refusal = Refusal(log, JOB, shown=deps.refusals)

    async def tick(self) -> int | None:
        """One run: queue the pending subscriptions, read a batch; how many were recomputed (None without a key)."""
        key = self.deps.settings.stripe_api_key
        if key is None:
            return None
        now = self.deps.clock()
        await q.enqueue(self.deps.pool, now=now)
        if self.refusal.waiting(now):  # what is queued meanwhile is read once Stripe is asked again
            return 0
        try:
            async with aiohttp.ClientSession() as session:
                api = StripeApi(session, api_key=key.get_secret_value(), base_url=self.deps.settings.stripe_api_url,
                                sleep=self.sleep)
                done = await resolve_due(self.deps.pool, api, now=now, tz=self.deps.settings.tz,
                                         prices=self.tiers)
                # One second's events their bodies could not order, by the subscription read again (0053).
                settled = await second_order.settle_due(self.deps.pool, api)
        except KeyRejected as exc:
            self.refusal.refused(exc, now)
            return 0
        except StripeApiError as exc:
            log.warning("Stripe discounts: %s", exc)
            return 0
        if api.answered:  # a run with nothing to read says nothing of a refusal
            self.refusal.answered()
        if done or settled:
            self.deps.home.changed()
        return done


def tiers_unread(deps: Deps) -> TiersUnread:
    """Why tiered prices still unread are out of MRR, as this process knows (each replica runs its own jobs): no
    key, a key Stripe refuses (a 401 to any job, or a 403 to this one), or being read by this job."""
    if deps.settings.stripe_api_key is None:
        return TiersUnread.NO_KEY
    if any(r.job == JOB or r.status == 401 for r in deps.refusals.standing()):
        return TiersUnread.REFUSED
    return TiersUnread.READING


async def resolve_due(pool: asyncpg.Pool, api: StripeApi, *, now: dt.datetime, tz: ZoneInfo,
                      prices: dict[str, tiers.Tiers | None] | None = None) -> int:
    """Claim a batch of subscriptions, read their Discounts (and tiers, cached in `prices` by price id), recompute
    their snapshots and tell their pings (in `tz`); how many were done. A 429 or a rejected key puts the rest of the
    batch back untouched and raises."""
    prices = {} if prices is None else prices
    claims = await q.claim(pool, now=now, lease_until=now + LEASE, limit=BATCH)
    coupons: dict[str, Mapping[str, Any]] = {}  # coupons read by id in this run (clover)
    done = 0
    for index, claim in enumerate(claims):
        try:
            await _resolve(pool, api, claim.subscription_id, (coupons, prices), now, tz)
        except (KeyRejected, Unavailable) as exc:
            if isinstance(exc, KeyRejected) or exc.status == 429:
                for rest in claims[index:]:
                    await q.retry(pool, subscription_id=rest.subscription_id, due_at=now + backoff(0),
                                  error=str(exc), attempt=False)
                raise
            await _failed(pool, claim, now, str(exc))
            continue
        except StripeApiError as exc:
            await _failed(pool, claim, now, str(exc))
            continue
        done += 1
    return done


async def _resolve(pool: asyncpg.Pool, api: StripeApi, subscription_id: str,
                   cache: tuple[dict[str, Mapping[str, Any]], dict[str, tiers.Tiers | None]], now: dt.datetime,
                   tz: ZoneInfo) -> None:
    """Read what the caches lack, then recompute the pending snapshots under the subscription's intake lock, and
    tell the pings that waited for their MRR."""
    coupons, prices = cache
    snapshots = await q.pending(pool, subscription_id)
    for price_id in sorted(set().union(*(tiers.ids_of(s.pricing) | tiers.ids_of(s.before_pricing)
                                         for s in snapshots)) - set(prices)):
        prices[price_id] = await tiers.read(api, price_id)
    wanted = set().union(*(ids_of(s.pricing) | ids_of(s.before_pricing) for s in snapshots))
    known = await q.terms(pool, sorted(wanted))
    if missing := wanted - set(known):
        read: dict[str, Terms | None] = dict(await discounts.read(api, subscription_id, coupons))
        fresh = {i: read.get(i) for i in missing}  # a Discount no longer on the subscription: None, gone
        await q.save_terms(pool, fresh, at=now)
        known |= fresh
    async with pool.acquire() as conn, conn.transaction():
        await intake_q.lock_refs(conn, [subscription_id])  # as bot/subscriptions/apply.py: no state race
        rows = [_recompute(s, known, prices) for s in await q.pending(conn, subscription_id)
                if ids_of(s.pricing) | ids_of(s.before_pricing) <= set(known)
                and tiers.ids_of(s.pricing) | tiers.ids_of(s.before_pricing) <= set(prices)]
        await q.recomputed(conn, subscription_id, rows)
        await late_mrr.tell(conn, subscription_id, rows, tz=tz)
        await q.done(conn, subscription_id)


def _recompute(s: q.PendingSnapshot, known: Mapping[str, Terms | None],
               prices: Mapping[str, tiers.Tiers | None]) -> q.Recomputed:
    gone = any(known.get(i) is None for i in ids_of(s.pricing) | ids_of(s.before_pricing))
    pricing, unpriced = tiers.priced(s.pricing, prices, currency=s.currency)  # a tier-less price is left out
    was, was_unpriced = tiers.priced(s.before_pricing, prices, currency=s.currency) if s.before_pricing \
        else (None, False)
    before = mrr_of(was, known, currency=s.currency, at=s.at) if was is not None else None
    return q.Recomputed(s.event_id, mrr_of(pricing, known, currency=s.currency, at=s.at), before,
                        "missing" if gone or unpriced or was_unpriced else "applied")


async def _failed(pool: asyncpg.Pool, claim: q.Claim, now: dt.datetime, error: str) -> None:
    give_up = claim.attempts + 1 >= MAX_ATTEMPTS
    log.info("Stripe discounts of %s: %s (attempt %d%s)", claim.subscription_id, error, claim.attempts + 1,
             ", giving up" if give_up else "")
    await q.retry(pool, subscription_id=claim.subscription_id, error=error,
                  due_at=FOREVER if give_up else now + backoff(claim.attempts))
