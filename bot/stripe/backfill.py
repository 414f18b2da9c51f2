"""`salespulse backfill --days N`: import Stripe history without pinging, so a new install starts with real numbers.

The last 30 days come from the Events API, through the webhook's own intake with Slack messages turned off.
Older days come from the Checkout Sessions and PaymentIntents listings (events are gone by then), each
object wrapped as the event that would have reported it; payments seen both ways meet on their Stripe ids
(`payment_refs`) and count once. From basil on a PaymentIntent no longer names the invoice it paid, so a
subscription's Checkout Session (which names its invoice) and its PaymentIntent would be two orders: on such an
account the paid InvoicePayments of the day are listed too, as the invoice_payment.paid events that tie them.
Day by day, oldest first, so refunds find their sales. Then every running subscription no event told (a yearly
subscriber's last event is older than 30 days), as it stands: MRR it already had, not new MRR. Then the balance
transactions (settled amount, fee, net; bot/stripe/settle.py) of every order of those days that lacks them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg

from bot.clock import utcnow
from bot.config import Settings
from bot.db import create_pool, database_url, migrate_database
from bot.intake.batch import MAX_BATCH, ingest_batch
from bot.intake.events import PaymentEvent
from bot.intake.result import Outcome
from bot.stripe import settle
from bot.stripe.build import invoice_unstated
from bot.stripe.events_api import KeyRejected, StripeApi, StripeApiError
from bot.stripe.fields import mapping
from bot.stripe.refunds import VOID
from bot.stripe.settle_job import settle_due
from bot.stripe.sync import EVENTS_KEPT, EVENTS_PATH, handled, submission
from bot.subscriptions.facts import RANKS, SubscriptionFacts
from queries import intake as intake_q
from queries import settlements, subscription_backfill
from queries import stripe_sync as q
from queries import subscriptions as subs_q

log = logging.getLogger(__name__)

DAY = dt.timedelta(days=1)
VIA = "backfill"
_SESSION_TYPES = {"complete": "checkout.session.completed", "expired": "checkout.session.expired"}


@dataclass
class Counts:
    """What a backfill read and did."""

    read: int = 0  # events and listed objects read from Stripe
    imported: int = 0  # stored now
    known: int = 0  # already stored (webhook, poll or an earlier backfill)
    skipped: int = 0  # nothing to import (open sessions, unpaid intents, malformed events)
    errors: int = 0  # stored, but the intake could not apply them (status 'error')


def _wrap(obj: dict[str, Any], type_: str, created: Any, *, prefix: str = "backfill") -> dict[str, Any]:
    """A listed object as the event that would have reported it, under an id of its own."""
    return {"id": f"{prefix}_{obj['id']}", "object": "event", "api_version": None,
            "created": created if isinstance(created, int) else obj.get("created"), "data": {"object": obj},
            "livemode": obj.get("livemode") is True, "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None}, "type": type_}


def session_events(obj: dict[str, Any], read_at: int) -> list[dict[str, Any]]:
    """A finished Checkout Session as checkout.session.completed/expired; open ones are not history yet (`read_at`,
    when the listing was read, tells nothing more of it)."""
    type_ = _SESSION_TYPES.get(obj.get("status") or "")
    if type_ is None:
        return []
    # A listing carries no completion time: the session's creation stands in (checkouts take minutes).
    return [_wrap(obj, type_, obj.get("expires_at") if type_.endswith("expired") else obj.get("created"))]


def intent_events(obj: dict[str, Any], read_at: int) -> list[dict[str, Any]]:
    """A succeeded PaymentIntent as payment_intent.succeeded, plus charge.refunded when its charge was refunded."""
    if obj.get("status") != "succeeded":
        return []
    events = [_wrap(obj, "payment_intent.succeeded", obj.get("created"))]
    charge = obj.get("latest_charge")  # expanded by the listing's `expand[]`
    if isinstance(charge, dict) and isinstance(charge.get("id"), str) and (charge.get("amount_refunded") or 0) > 0:
        charge = {**charge, "payment_intent": charge.get("payment_intent") or obj["id"]}  # how it finds its sale
        events.append(_wrap(charge, "charge.refunded", _refunded_as_of(charge, read_at), prefix="backfill_refund"))
    return events


def _refunded_as_of(charge: dict[str, Any], read_at: int) -> int:
    """The time the listed `amount_refunded` stands for, as a charge.refunded would carry it: the newest refund's
    creation, so the refund is dated when it was made; but when the listing shows a refund failed or canceled (it
    may have failed after a newer one was made) or not all of them, the time it was read. A refund that fails later
    comes off it then (bot/intake/refunds.py counts a failure against the totals stamped between its creation and
    its failure); stamped with the charge's own time, before any refund, it never would."""
    refunds = charge.get("refunds")
    if not isinstance(refunds, dict) or refunds.get("has_more") is not False:
        return read_at
    listed = refunds.get("data")
    if not isinstance(listed, list) or not listed:
        return read_at
    if any(not isinstance(r, dict) or r.get("status") in VOID or not isinstance(r.get("created"), int)
           for r in listed):
        return read_at
    return max(r["created"] for r in listed)


def invoice_payment_events(obj: dict[str, Any], read_at: int) -> list[dict[str, Any]]:
    """A paid InvoicePayment (basil on) as invoice_payment.paid: the link between an invoice and its payment."""
    if obj.get("status") != "paid":
        return []
    return [_wrap(obj, "invoice_payment.paid", mapping(obj, "status_transitions").get("paid_at") or obj.get("created"))]


# A listing's path, its parameters, and how an object of it becomes events (given when it was read, unix seconds).
Listing = tuple[str, tuple[tuple[str, str], ...], Callable[[dict[str, Any], int], list[dict[str, Any]]]]
LISTINGS: tuple[Listing, ...] = (
    ("/v1/checkout/sessions", (), session_events),
    # A Charge carries its refunds only when they are asked for by name (API 2022-11-15): their times date a refund.
    ("/v1/payment_intents", (("expand[]", "data.latest_charge"), ("expand[]", "data.latest_charge.refunds")),
     intent_events),
)
# Listed only for a day whose paid PaymentIntents come in the basil shape (bot.stripe.build.invoice_unstated).
INVOICE_PAYMENTS: Listing = ("/v1/invoice_payments", (("status", "paid"),), invoice_payment_events)
# Every subscription, whatever its age. Without `status` Stripe lists all but the canceled ones, which count no MRR
# (https://docs.stripe.com/api/subscriptions/list). Discounts expanded as the discounts job reads them (at most four
# levels: a clover item's coupon stays an id, read by that job later).
SUBSCRIPTIONS = ("/v1/subscriptions", (("expand[]", "data.discounts"), ("expand[]", "data.items.data.discounts")))
ENDED = frozenset({"canceled", "incomplete_expired"})  # no MRR, and no longer a subscription the store runs


def _days(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, end) cut into days, oldest first."""
    out = []
    while start < end:
        out.append((start, min(start + DAY, end)))
        start += DAY
    return out


def _between(a: dt.datetime, b: dt.datetime) -> list[tuple[str, str]]:
    return [("created[gte]", str(int(a.timestamp()))), ("created[lt]", str(int(b.timestamp())))]


async def backfill(pool: asyncpg.Pool, api: StripeApi, *, days: int, now: dt.datetime, tz: ZoneInfo,
                   progress: Callable[[str], None] = lambda line: None) -> Counts:
    """Import the `days` days before `now`; nothing is pinged, and the poller takes over from `now`."""
    await q.ensure_state(pool, now=now)  # a first poll after this starts here, not `days` ago
    start, events_from = now - days * DAY, max(now - days * DAY, now - EVENTS_KEPT)
    counts = Counts()
    for a, b in _days(start, events_from):
        listed = [e for listing in LISTINGS for e in await _listed(api, listing, a, b, counts, read_at=now)]
        if any(e["type"] == "payment_intent.succeeded" and invoice_unstated(e["data"]["object"]) for e in listed):
            listed += await _listed(api, INVOICE_PAYMENTS, a, b, counts, read_at=now)
        listed.sort(key=lambda e: e["created"] or 0)
        await _import(pool, listed, counts, now=now, tz=tz)
        progress(f"backfill: {a:%Y-%m-%d} (listings) {counts.imported:,} imported")
    for a, b in _days(events_from, now):
        events: list[dict[str, Any]] = []
        async for page in api.pages(EVENTS_PATH, _between(a, b)):
            counts.read += len(page.data)
            events.extend(e for e in page.data if handled(e))
        events.reverse()  # Stripe lists newest first
        await _import(pool, events, counts, now=now, tz=tz)
        progress(f"backfill: {a:%Y-%m-%d} (events) {counts.imported:,} imported")
    await backfill_subscriptions(pool, api, counts)  # after the events: a subscription they told is known
    progress(f"backfill: subscriptions {counts.imported:,} imported")
    return counts


async def backfill_subscriptions(pool: asyncpg.Pool, api: StripeApi, counts: Counts) -> None:
    """Store each running subscription no event told, as listed: one snapshot at the time it was read whose MRR it
    already had (`before_mrr` = its MRR: it was running before, so no new MRR is booked), and its state. One the
    store knows keeps its ledger as its events wrote it: neither duplicated nor moved."""
    try:
        async for page in api.pages(*SUBSCRIPTIONS):
            counts.read += len(page.data)
            read_at = int(utcnow().timestamp())
            listed: dict[str, tuple[PaymentEvent, SubscriptionFacts]] = {}
            for obj in page.data:
                sub = None if obj.get("status") in ENDED else submission(
                    _wrap(obj, "customer.subscription.updated", read_at), via=VIA)
                if sub is None or sub.event is None or sub.event.subscription is None:
                    counts.skipped += 1
                else:
                    listed[sub.event.subscription.id] = (sub.event, sub.event.subscription)
            stored = await _store_subscriptions(pool, list(listed.values()))
            counts.imported, counts.known = counts.imported + stored, counts.known + len(listed) - stored
    except KeyRejected as exc:
        raise KeyRejected(f"listing subscriptions needs Subscriptions: read — {exc}", status=exc.status,
                          code=exc.code) from exc


async def _store_subscriptions(pool: asyncpg.Pool, listed: list[tuple[PaymentEvent, SubscriptionFacts]]) -> int:
    """Those of the listed subscriptions the store does not know, stored under their locks; how many."""
    ids = sorted(f.id for _, f in listed)
    async with pool.acquire() as conn, conn.transaction():
        await intake_q.lock_refs(conn, ids)  # as every writer of snapshots (bot/subscriptions/apply.py)
        known = await subscription_backfill.known_subscriptions(conn, ids)
        fresh = [(e, f) for e, f in listed if f.id not in known]
        await subs_q.insert_snapshots(conn, [_standing(e, f) for e, f in fresh])
        await subs_q.upsert_states(conn, [_state(e, f) for e, f in fresh])
    return len(fresh)


def _standing(e: PaymentEvent, f: SubscriptionFacts) -> subs_q.Snapshot:
    """The listed subscription's snapshot: its MRR now, which it had just before too (a Discount named by id only
    leaves both before it, recomputed alike by the discounts job)."""
    pricing = json.dumps(f.pricing) if f.pricing is not None else None
    return subs_q.Snapshot(event_id=e.event_id, subscription_id=f.id, at=e.occurred_at, rank=RANKS[e.event_type],
                           status=f.status, mrr=f.mrr, currency=f.currency, plan=f.plan, before_mrr=f.mrr,
                           pricing=pricing, before_pricing=pricing, discounts=None if pricing is None else "pending")


def _state(e: PaymentEvent, f: SubscriptionFacts) -> subs_q.StateRow:
    return subs_q.StateRow(id=f.id, customer=f.customer, status=f.status, mrr=f.mrr, currency=f.currency,
                           plan=f.plan, cancel_at_period_end=f.cancel_at_period_end, cancel_at=f.cancel_at,
                           current_period_end=f.current_period_end, started_at=f.started_at,
                           canceled_at=f.canceled_at, ended_at=f.ended_at, livemode=e.livemode,
                           last_event_id=e.event_id, last_event_at=e.occurred_at,
                           last_event_rank=RANKS[e.event_type])


async def _listed(api: StripeApi, listing: Listing, a: dt.datetime, b: dt.datetime, counts: Counts, *,
                  read_at: dt.datetime) -> list[dict[str, Any]]:
    """The objects of one listing created in [a, b), as events; `read_at`: the backfill's now, when it reads them."""
    path, extra, convert = listing
    events: list[dict[str, Any]] = []
    async for page in api.pages(path, [*extra, *_between(a, b)]):
        counts.read += len(page.data)
        for obj in page.data:
            wrapped = convert(obj, int(read_at.timestamp()))
            counts.skipped += not wrapped
            events.extend(wrapped)
    return events


async def _import(pool: asyncpg.Pool, events: list[dict[str, Any]], counts: Counts, *, now: dt.datetime,
                  tz: ZoneInfo) -> None:
    subs = [s for raw in events if (s := submission(raw, via=VIA)) is not None]
    counts.skipped += len(events) - len(subs)
    known = await q.known_event_ids(pool, [s.event_id for s in subs])
    counts.known += len(known)
    subs = [s for s in subs if s.event_id not in known]
    async with pool.acquire() as conn:
        for i in range(0, len(subs), MAX_BATCH):
            chunk = subs[i:i + MAX_BATCH]
            # An event the database refuses is kept as an error by the intake itself; the rest still import.
            results = await ingest_batch(conn, chunk, tz=tz, now=now, notify=False)
            counts.imported += sum(r.outcome in (Outcome.PROCESSED, Outcome.IGNORED) for r in results)
            counts.known += sum(r.outcome is Outcome.DUPLICATE for r in results)
            counts.errors += sum(r.outcome is Outcome.ERROR for r in results)


async def backfill_fees(pool: asyncpg.Pool, api: StripeApi, *, days: int, now: dt.datetime,
                        store: str | None) -> int:
    """Read the balance transactions of every paid order of the last `days` days that lacks them (as the fees
    job does, batch after batch); what fails stays queued for the running bot. How many orders were read."""
    await settlements.enqueue(pool, since=now - days * DAY, now=now)
    if store is None and (store := await settle.account_currency(api)) is not None:
        await settlements.save_account(pool, currency=store, at=now)
    total = 0
    while True:
        done, claimed = await settle_due(pool, api, store=store, now=now)
        total += done
        if not claimed:
            return total


async def backfill_command(settings: Settings, *, days: int) -> int:
    """The CLI: migrations first, then the import, with a progress line per day and a summary; 1 on failure."""
    if settings.stripe_api_key is None:
        print("salespulse backfill: set STRIPE_API_KEY (a restricted key with read access to Events,"
              " Checkout Sessions, PaymentIntents, Invoices and Subscriptions is enough)", file=sys.stderr)
        return 1
    configured = settings.database_url.get_secret_value() if settings.database_url else None
    async with database_url(configured, settings.salespulse_data_dir) as dsn:
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            await migrate_database(dsn)
            async with aiohttp.ClientSession() as session:
                api = StripeApi(session, api_key=settings.stripe_api_key.get_secret_value(),
                                base_url=settings.stripe_api_url)
                counts = await backfill(pool, api, days=days, now=utcnow(), tz=settings.tz,
                                        progress=lambda line: print(line, file=sys.stderr, flush=True))
                fees = await backfill_fees(pool, api, days=days, now=utcnow(), store=settings.store_currency)
        except StripeApiError as exc:
            print(f"salespulse backfill: {exc}", file=sys.stderr)
            return 1
        finally:
            await pool.close()
    print(f"backfilled {days} day(s): {counts.imported:,} imported, {counts.known:,} already stored,"
          f" {counts.skipped:,} skipped, {counts.errors:,} errors ({counts.read:,} read from Stripe); no pings sent;"
          f" fees and settled amounts of {fees:,} orders read")
    return 0
