"""Applying a batch of events in one transaction and one set of statements (bot/intake/batcher.py gathers them).

A burst costs a dozen statements per batch instead of a dozen per event; a single event is a batch of one. This is
the only way events are applied: webhooks, the inbox, the app's own orders, the Events API poller and the backfill
all come here, and an event the database refuses is stored as an error without failing the rest of its batch.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import asyncpg

from bot.intake import declines, refund_pings
from bot.intake.events import Kind, PaymentEvent
from bot.intake.fold import Fold
from bot.intake.result import PAYLOAD_ERRORS, IntakeResult, Outcome
from bot.intake.storable import unstorable
from bot.subscriptions.apply import apply_subscriptions
from bot.subscriptions.renewals import Renewals, quiet_renewals
from queries import intake as q
from queries import intake_later, intake_log, intake_new, planning, settlements
from queries import intake_pings as pings

log = logging.getLogger(__name__)

MAX_BATCH = 200
_NEEDS_ORDERS = (Kind.SALE, Kind.PENDING, Kind.FAILURE, Kind.REFUND, Kind.REFUND_VOID, Kind.DISPUTE,
                 Kind.DISPUTE_SETTLED, Kind.LINK)


@dataclass(frozen=True, slots=True)
class Submission:
    """One verified, parsed webhook."""

    source: str
    event_id: str
    event_type: str
    body: str  # the raw JSON text, stored as received
    event: PaymentEvent | None
    via: str = "webhook"  # how it arrived: webhook | events_api | recovered | backfill (webhook_logs.via)

    @property
    def metric_source(self) -> str:
        """Its source as /metrics labels it: "stripe" for a webhook, "stripe_events_api" (say) for another way in."""
        return self.source if self.via == "webhook" else f"{self.source}_{self.via}"

    def log_row(self, error: str | None = None) -> intake_log.LogRow:
        """The webhook_logs row that records this event (refused, with its reason, when `error` is given)."""
        e = self.event
        status = "error" if error else "processed" if e else "ignored"
        return intake_log.LogRow(self.source, self.event_id, self.event_type, status, self.body,
                                 bool(e and e.livemode), e.occurred_at if e else None, self.via, error)


async def ingest_batch(conn: asyncpg.Connection, subs: list[Submission], *, tz: ZoneInfo,
                       now: dt.datetime, notify: bool = True, settle: dt.timedelta = dt.timedelta(0),
                       renewals: Renewals = Renewals.PING, stripe_key: bool = True) -> list[IntakeResult]:
    """Store and apply events in order, in one transaction; a single event is a batch of one.

    An event the rules or PostgreSQL refuse is stored with status 'error' and its reason, and the others
    are applied as if it had come alone. `notify=False` queues no Slack message (`salespulse backfill`); `settle`
    is how long a sale ping not yet naming its product and customer waits for the event that does; `stripe_key`
    whether STRIPE_API_KEY is set (without it no job reads a tiered price: its ping says its MRR is not known)."""
    try:
        async with conn.transaction():
            await planning.plan_each_statement(conn)
            return await _apply(conn, subs, tz=tz, now=now, notify=notify, settle=settle, renewals=renewals,
                                stripe_key=stripe_key)
    except PAYLOAD_ERRORS as exc:
        # Rare (the parser and fold.unstorable() keep odd values out), so the common path pays no savepoint
        # for it: find the refused event(s) by halving the batch, each half under a savepoint. Any split of a
        # stream into batches has the same effect, so the result equals applying the events one at a time.
        log.info("batch of %d refused (%s: %s); isolating the odd event", len(subs), type(exc).__name__, exc)
        async with conn.transaction():
            await planning.plan_each_statement(conn)
            return await _split(conn, subs, exc, tz=tz, now=now, notify=notify, settle=settle, renewals=renewals,
                                stripe_key=stripe_key)


async def _attempt(conn: asyncpg.Connection, subs: list[Submission], *, tz: ZoneInfo, now: dt.datetime,
                   notify: bool, settle: dt.timedelta, renewals: Renewals, stripe_key: bool) -> list[IntakeResult]:
    try:
        async with conn.transaction():  # a savepoint: a refusal undoes this part only
            return await _apply(conn, subs, tz=tz, now=now, notify=notify, settle=settle, renewals=renewals,
                                stripe_key=stripe_key)
    except PAYLOAD_ERRORS as exc:
        return await _split(conn, subs, exc, tz=tz, now=now, notify=notify, settle=settle, renewals=renewals,
                            stripe_key=stripe_key)


async def _split(conn: asyncpg.Connection, subs: list[Submission], exc: Exception, *, tz: ZoneInfo,
                 now: dt.datetime, notify: bool, settle: dt.timedelta, renewals: Renewals,
                 stripe_key: bool) -> list[IntakeResult]:
    if len(subs) == 1:
        return [await refuse(conn, subs[0], exc)]
    half = len(subs) // 2
    first = await _attempt(conn, subs[:half], tz=tz, now=now, notify=notify, settle=settle, renewals=renewals,
                           stripe_key=stripe_key)
    rest = await _attempt(conn, subs[half:], tz=tz, now=now, notify=notify, settle=settle, renewals=renewals,
                          stripe_key=stripe_key)
    return first + rest


async def refuse(conn: asyncpg.Connection, sub: Submission, exc: Exception) -> IntakeResult:
    """Keep a refused event with status 'error' and its reason (a redelivery of it is then a duplicate)."""
    log.warning("%s event %s (%s) could not be applied: %s", sub.source, sub.event_id, sub.event_type, exc)
    error, row = f"{type(exc).__name__}: {exc}", sub.log_row()
    try:
        async with conn.transaction():
            stored = await intake_log.log_refused(conn, row, error=error)
    except asyncpg.DataError:  # jsonb refused the body itself: keep it as one JSON string
        stored = await intake_log.log_refused(conn, row, error=error, as_text=True)
    return IntakeResult(Outcome.ERROR if stored else Outcome.DUPLICATE)


async def _apply(conn: asyncpg.Connection, subs: list[Submission], *, tz: ZoneInfo, now: dt.datetime,
                 notify: bool, settle: dt.timedelta, renewals: Renewals, stripe_key: bool) -> list[IntakeResult]:
    """Log the batch, fold its new events over the orders they touch, write everything back."""
    results, todo = await _log_new(conn, subs)
    todo = await declines.tell_batch(conn, todo)
    fold = Fold(tz=tz, now=now, notify=notify, settle=settle)
    refs = sorted({r for _, e in todo if e.kind in _NEEDS_ORDERS for r in e.refs})  # locked by _log_new
    if refs:
        for ref, row in await q.orders_by_refs(conn, refs):
            fold.load(ref, row)
    for i, e in todo:
        fold.apply(i, e)
    updates = fold.finish()
    fold.messages = declines.wait_for_reasons(fold.messages, todo, settle)
    queued = await _write_back(conn, fold, tz=tz, now=now, notify=notify, stripe_key=stripe_key)
    await declines.tell_recorded(conn, todo, fold.failures, tz=tz, notify=notify)
    await refund_pings.tell_voids(conn, fold, queued)  # a failed refund's ping told its order's sale and customer
    await intake_later.complete_checkouts(conn, fold.paid_checkouts)  # sessions of earlier batches, once paid
    # A ping this batch has just queued already holds its order's final state: only older pending pings need it.
    await pings.refresh_pings(conn, [u for u in updates if u.dedupe_key not in queued])
    # Only an order with an invoice can have paid a renewal invoice (quiet_renewals joins on it).
    invoiced = sorted(o.id for o in fold.orders.values() if o.invoice_id is not None)
    await quiet_renewals(conn, invoiced, sorted(fold.renewals), mode=renewals, now=now,
                         likely=fold.likely_renewals())
    counts = [0] * len(subs)
    for m in fold.messages:
        if m.dedupe_key in queued:
            counts[m.event_index] += 1
    for i, _ in todo:
        results[i] = IntakeResult(Outcome.PROCESSED, counts[i])
    return results


def one_statement(fold: Fold) -> bool:
    """Whether the batch only adds: new orders with refs, checkouts and messages, nothing stored changed or merged
    (and no failure, whose ping waits for its row: the attempt may be recorded already)."""
    return bool(fold.new_refs and fold.checkouts and fold.messages and not fold.stored_losers and not fold.failures
                and not fold.subscription_events and any(o.is_new for o in fold.orders.values())
                and not any(o.changed() and not o.is_new for o in fold.orders.values()))


async def _write_back(conn: asyncpg.Connection, fold: Fold, *, tz: ZoneInfo, now: dt.datetime,
                      notify: bool, stripe_key: bool) -> set[str]:
    """Write the fold's rows and queue its messages; return the message keys queued."""
    if one_statement(fold):  # the common batch (new checkout sales): orders, refs, checkouts and messages at once
        new = [o for o in fold.orders.values() if o.is_new]
        await planning.plan_as_usual(conn)  # see PLAN_AS_USUAL
        queued = await intake_new.write_new(conn, new, fold.new_refs, list(fold.checkouts.values()), fold.messages)
        await planning.plan_each_statement(conn)
        await _write_incidents(conn, fold, now=now)
        return queued
    await q.write_orders(conn, fold.orders.values())
    await pings.merge_orders(conn, fold.losers())  # after the survivors exist, before their new refs
    await q.add_refs(conn, fold.new_refs)
    await q.upsert_checkouts(conn, fold.checkouts.values())
    recorded = await _write_incidents(conn, fold, now=now)
    # A failure another event of the same attempt recorded already (an earlier batch) is not pinged again.
    fold.messages = [m for m in fold.messages
                     if m.kind != "failure" or m.dedupe_key.removeprefix("failure:") in recorded]
    await pings.merge_pings(conn, fold.losers())
    fold.messages += await apply_subscriptions(conn, fold.subscription_events, tz=tz, notify=notify,
                                               stripe_key=stripe_key)
    return await q.enqueue(conn, fold.messages)


async def _write_incidents(conn: asyncpg.Connection, fold: Fold, *, now: dt.datetime) -> set[str]:
    """The batch's failed payments and disputes; the event ids of the failures recorded."""
    recorded = await q.insert_failures(conn, fold.failures)
    await q.upsert_disputes(conn, list(fold.disputes.values()))
    await settlements.reread(conn, refs=sorted({r for e in fold.reread for r in e.refs}), now=now)
    return recorded


async def _log_new(conn: asyncpg.Connection,
                   subs: list[Submission]) -> tuple[list[IntakeResult], list[tuple[int, PaymentEvent]]]:
    """Lock the payments the batch's events name and store each event once; return the results so far and the new
    events to apply, by index."""
    rows: dict[tuple[str, str], intake_log.LogRow] = {}
    for s in subs:
        if (s.source, s.event_id) not in rows:
            problem = unstorable(s.event) if s.event else None
            rows[s.source, s.event_id] = s.log_row(f"ValueError: {problem}" if problem else None)
    refs = {r for s in subs if s.event is not None and s.event.kind in _NEEDS_ORDERS for r in s.event.refs}
    # An invoice's failure and its PaymentIntent's name no common payment from basil on: the customer serialises
    # them, so that one batch sees the other's decline or failure (bot/intake/declines.py).
    refs |= {s.event.customer_id for s in subs
             if s.event is not None and s.event.kind is Kind.FAILURE and s.event.customer_id is not None}
    new = await intake_new.log_and_lock(conn, list(rows.values()), sorted(refs))
    results = [IntakeResult(Outcome.DUPLICATE)] * len(subs)
    todo: list[tuple[int, PaymentEvent]] = []
    for i, s in enumerate(subs):
        if (s.source, s.event_id) not in new:
            continue
        new.discard((s.source, s.event_id))  # a second copy in the same batch is a duplicate
        if rows[s.source, s.event_id].last_error:
            log.warning("%s event %s (%s) refused: %s", s.source, s.event_id, s.event_type,
                        rows[s.source, s.event_id].last_error)
            results[i] = IntakeResult(Outcome.ERROR)
        elif s.event is None:
            results[i] = IntakeResult(Outcome.IGNORED)
        else:
            todo.append((i, s.event))
    return results, todo
