"""Apply a batch's subscription events: snapshots, newest states, and the ping each change earns.

Called by the intake (bot/intake/batch.py) inside the batch's transaction, after the orders, so the webhook still
gets its 2xx only once all of it has committed. Which ping an event earns is read from the event itself (its
object and `previous_attributes`), so any arrival order gives the same pings; only whether a churn lost anything
is the ledger's too, so no churn is announced where the MRR figures count none (a subscription that never paid),
and whether one now paying had paid before (a "welcome back", reactivation MRR, rather than a new subscriber), and
whether its customer pays on another subscription (a subscription added or ended: no subscriber comes or goes).
One second's events of a subscription are put in the order the events themselves say (bot/subscriptions/order.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bot.blocks.subscriptions import Change, SubscriptionView, subscription_message
from bot.intake.events import PaymentEvent
from bot.subscriptions import late_mrr
from bot.subscriptions.facts import RANKS, SubscriptionFacts
from bot.subscriptions.mrr import minor
from bot.subscriptions.order import SecondEvent, ordered
from queries import intake as intake_q
from queries import subscription_seconds as seconds_q
from queries import subscriptions as q
from queries.intake import QueuedMessage

log = logging.getLogger(__name__)

CHANNEL = "sales"
KIND = "subscription"


def _snapshot(e: PaymentEvent, f: SubscriptionFacts) -> q.Snapshot:
    before = f.gross_mrr if e.event_type.endswith(".deleted") else f.previous_mrr
    pending = f.pricing is not None  # a Discount named by id only: bot/stripe/discount_job.py reads it
    return q.Snapshot(e.event_id, f.id, e.occurred_at, RANKS.get(e.event_type, 1), f.status, f.mrr, f.currency,
                      f.plan, before, json.dumps(f.pricing) if pending else None,
                      json.dumps(f.before_pricing) if pending and f.before_pricing is not None else None,
                      "pending" if pending else None)


def state_row(e: PaymentEvent, f: SubscriptionFacts, seq: int) -> q.StateRow:
    """The subscription's state row as event `e` (at place `seq` in its second) leaves it."""
    return q.StateRow(f.id, f.customer, f.status, f.mrr, f.currency, f.plan, f.cancel_at_period_end, f.cancel_at,
                      f.current_period_end, f.started_at, f.canceled_at, f.ended_at, e.livemode, e.event_id,
                      e.occurred_at, RANKS.get(e.event_type, 1), seq)


def churns(e: PaymentEvent, f: SubscriptionFacts) -> bool:
    """Whether the event ends the subscription's paying: deleted, or moved from paying to not paying (a status
    such as `unpaid` or `paused`, or its payment collection paused)."""
    return e.event_type.endswith(".deleted") or (f.was_paying is True and not f.paying)


def change_of(e: PaymentEvent, f: SubscriptionFacts, *, ledger_start: int | None = None,
              paid_before: bool = False, others_paying: bool = False, own_paid: bool = False
              ) -> SubscriptionView | None:
    """The ping an event earns, or None (a trial starting, a renewal, a payment method changing…).

    Read from the event (its object and previous_attributes), so every arrival order earns the same pings: a churn
    loses what the event says it was paying, or what the deleted subscription's items are worth (0 when it ended in
    its trial). No churn either where the ledger's MRR before the event (`ledger_start`, its snapshot's start) is
    0: the figures count none there — a trial paused for want of a card, then canceled, never paid. One now paying
    whose ledger says it (or its customer, on another subscription) paid before (`paid_before`) is back, not new;
    one whose customer pays on another subscription just before it (`others_paying`) is added, or ended, not a
    subscriber coming or going (unless the subscription itself comes back: `own_paid`)."""
    now = minor(f.mrr)  # the facts are in MRR units: a ping shows minor units, each figure rounded once
    base = SubscriptionView(change=Change.NEW, subscription_id=f.id, plan=f.plan, currency=f.currency, mrr=now,
                            delta=now, occurred_at=e.occurred_at)
    if churns(e, f):
        if late_mrr.computing(f):  # its items leave a tiered price out: the ledger says what it lost (late_mrr)
            return None
        lost = f.previous_mrr if f.previous_mrr is not None else f.gross_mrr
        paid = lost > 0 and (ledger_start is None or ledger_start > 0)
        gone = Change.ENDED if others_paying else Change.CHURNED
        return replace(base, change=gone, mrr=minor(lost), delta=-minor(lost)) if paid else None
    if not f.paying:
        return None
    if e.event_type.endswith(".created") or f.was_paying is False:
        # Created paying, a trial (or an incomplete first payment) now paying, or back from unpaid or a pause.
        if others_paying and not own_paid:
            return replace(base, change=Change.ADDED)
        return replace(base, change=Change.REACTIVATED) if paid_before else base
    if f.previous_signature is not None and (f.previous_signature != f.signature or f.previous_mrr != f.mrr):
        return replace(base, change=Change.PLAN, delta=minor(f.mrr - (f.previous_mrr or 0)),
                       previous_plan=f.previous_plan)
    if f.previous_cancel is False and f.cancel_scheduled:
        return replace(base, change=Change.CANCEL_SCHEDULED, delta=0, cancels_on=f.cancels_on)
    if f.previous_cancel is True and not f.cancel_scheduled:
        return replace(base, change=Change.CANCEL_WITHDRAWN, delta=0)
    return None


def _dedupe_key(e: PaymentEvent, change: Change, m: q.Movement | None) -> str:
    """One welcome and one farewell per stretch of paying whatever events say so; one ping per event otherwise.

    A subscription's first stretch keeps the keys of one welcome and one farewell per subscription; one that pays
    again after having paid (back from `unpaid` or a pause) starts another, keyed by the event where it came back:
    its farewell is a second one, while `unpaid` then deleted stays one (the deletion moves from 0: no churn)."""
    if change in (Change.NEW, Change.REACTIVATED, Change.ADDED):
        back = m is not None and m.own_paid  # the subscription itself came back: its welcome is this event's
        return f"sub-new:{e.subscription_id}" + (f":{e.event_id}" if back else "")
    if change in (Change.CHURNED, Change.ENDED):
        return late_mrr.churn_key(str(e.subscription_id), m.stretch if m is not None else None)
    return f"sub:{e.event_id}"


async def _never_paid(conn: asyncpg.Connection, todo: Sequence[tuple[int, PaymentEvent, SubscriptionFacts]]
                      ) -> list[tuple[int, PaymentEvent, SubscriptionFacts]]:
    """The events with a deletion that may never have paid (its trial ended in Stripe's pause for want of a card)
    taken as never paid — nothing lost, whatever order its events come in — unless the store knows it paid: an
    invoice that took money, or a snapshot (stored, or of this batch) showing it paying."""
    doubtful = {f.id for _, e, f in todo if e.event_type.endswith(".deleted") and f.paused_at_trial_end}
    if not doubtful:
        return list(todo)
    deletions = [e.event_id for _, e, f in todo if e.event_type.endswith(".deleted")]
    paid = await q.paid_ever(conn, sorted(doubtful), besides=deletions)
    paid |= {f.id for _, e, f in todo if not e.event_type.endswith(".deleted") and (f.mrr or f.previous_mrr)}
    out = []
    for i, e, f in todo:
        if e.event_type.endswith(".deleted") and f.id in doubtful and f.id not in paid:
            f = replace(f, gross_mrr=0, before_pricing=None if f.before_pricing is None else
                        {**f.before_pricing, "counted": False})
        out.append((i, e, f))
    return out


def _key(e: PaymentEvent, seqs: Mapping[str, int]) -> tuple[dt.datetime, int, int, str]:
    """The ledger's order (at, rank, seq, event id)."""
    return e.occurred_at, RANKS.get(e.event_type, 1), seqs.get(e.event_id, 0), e.event_id


def _body(text: str | None) -> Mapping[str, object] | None:
    value = json.loads(text) if text else None
    return value if isinstance(value, Mapping) else None


def second_events(rows: Sequence[seconds_q.SecondRow]) -> list[SecondEvent]:
    """The events of stored snapshots of one second, as bot/subscriptions/order.py reads them."""
    return [SecondEvent(r.event_id, r.rank, _body(r.obj), _body(r.previous)) for r in rows]


async def _seconds(conn: asyncpg.Connection, event_ids: Sequence[str]) -> dict[str, int]:
    """The place of each snapshot sharing its subscription's second with one of these events: ordered by what the
    events say (bot/subscriptions/order.py), stored places (and the state rows') moved with them."""
    groups: dict[tuple[str, dt.datetime], list[seconds_q.SecondRow]] = {}
    for r in await seconds_q.same_second(conn, event_ids):
        groups.setdefault((r.subscription_id, r.at), []).append(r)
    seqs: dict[str, int] = {}
    unsettled: list[tuple[str, dt.datetime]] = []
    for (sub, at), rows in groups.items():
        ids, settled = ordered(second_events(rows))
        if not settled:
            log.warning("Subscription %s: events of %s not ordered by what they say; by id until read: %s",
                        sub, at.isoformat(), ", ".join(ids))
            unsettled.append((sub, at))
        seqs |= {i: n for n, i in enumerate(ids)}
    moved = {r.event_id: seqs[r.event_id] for rows in groups.values() for r in rows if r.seq != seqs[r.event_id]}
    await seconds_q.set_seq(conn, moved, subscription_ids=sorted({sub for sub, _ in groups}))
    await seconds_q.queue_checks(conn, unsettled)  # read with STRIPE_API_KEY: bot/stripe/second_order.py
    return seqs


async def apply_subscriptions(conn: asyncpg.Connection, events: Sequence[tuple[int, PaymentEvent]], *,
                              tz: ZoneInfo, notify: bool, stripe_key: bool = True) -> list[QueuedMessage]:
    """Store the events' snapshots and states; return the pings to queue (none when `notify` is False). Without
    `stripe_key` (STRIPE_API_KEY) no job will read a tiered price: its ping says its MRR is not known."""
    todo = [(i, e, e.subscription) for i, e in events if e.subscription is not None]
    if not todo:
        return []
    await intake_q.lock_refs(conn, sorted({f.id for _, _, f in todo}))  # after the batch's order refs, in order
    todo = await _never_paid(conn, todo)
    snapshots = [_snapshot(e, f) for _, e, f in todo]
    await q.insert_snapshots(conn, snapshots)
    seqs = await _seconds(conn, [e.event_id for _, e, _ in todo])
    newest: dict[str, tuple[PaymentEvent, SubscriptionFacts]] = {}
    for _, e, f in todo:
        cur = newest.get(f.id)
        if cur is None or _key(e, seqs) > _key(cur[0], seqs):
            newest[f.id] = (e, f)
    await q.upsert_states(conn, [state_row(e, f, seqs.get(e.event_id, 0)) for e, f in newest.values()])
    if not notify:
        return []
    # After the insert and the states: their triggers have set each snapshot's start and whether it (or its
    # customer) had paid before (0022, 0034, 0043), as the MRR figures read them.
    moved = await q.movements(conn, [e.event_id for _, e, _ in todo])
    messages: list[QueuedMessage] = []
    for index, e, f in todo:
        m = moved.get(e.event_id)
        v = change_of(e, f, ledger_start=m.start if m is not None and churns(e, f) else None,
                      paid_before=m is not None and m.paid_before, others_paying=m is not None and m.others_paying,
                      own_paid=m is not None and m.own_paid)
        if v is not None:
            key = _dedupe_key(e, v.change, m)
            if all(m.dedupe_key != key for m in messages):
                messages.append(QueuedMessage(index, key, CHANNEL, KIND, _payload(v, e, f, tz, stripe_key)))
    tiered = [(i, e.event_id, f.id) for i, e, f in todo if late_mrr.computing(f)]
    for index, key, payload in await late_mrr.tiered_churns(conn, tiered, tz=tz, read=stripe_key) if tiered else ():
        if all(m.dedupe_key != key for m in messages):
            messages.append(QueuedMessage(index, key, CHANNEL, KIND, payload))
    return messages


def _payload(v: SubscriptionView, e: PaymentEvent, f: SubscriptionFacts, tz: ZoneInfo,
             stripe_key: bool) -> dict[str, Any]:
    """The ping; one whose MRR leaves out a tiered price not read yet says it is being computed, never "+$0.00",
    and is told once it is (bot/subscriptions/late_mrr.py); without a key, that it is not known (nothing reads it:
    a promise no job keeps would stand forever)."""
    if not late_mrr.computing(f):
        return subscription_message(v, tz=tz).as_payload()
    if not stripe_key:
        return subscription_message(replace(v, unknown=late_mrr.NO_KEY), tz=tz).as_payload()
    return late_mrr.marked(subscription_message(replace(v, unknown=late_mrr.COMPUTING), tz=tz).as_payload(), v,
                           e.event_id)
