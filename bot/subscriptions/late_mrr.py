"""A subscription ping whose MRR is not known at intake, told it once the discounts job has read what it lacked.

A tiered price comes in webhooks without its tiers (bot/stripe/tiers.py), so at intake the subscription's MRR leaves
the item out: its ping says the MRR is being computed rather than "+$0.00", and its payload keeps what it shows
(MARK: senders send only `text` and `blocks`). Once the discounts job (bot/stripe/discount_job.py) has recomputed
the event's snapshot, the ping is told, as a late decline reason is (bot/intake/declines.py): rewritten while nobody
can have sent it, and edited in place once it may be out.

A churn (or a subscription ended) on a tiered price loses what the ledger says it moves from (queries/late_churn.py),
not what its event's items are worth without their tiers (0): it is pinged with that figure when the snapshot it
moves from is read, else as being computed and told it once it is. A deletion that arrives before the events of
the subscription paying is pinged when they arrive (they are what it moves from).

Without STRIPE_API_KEY no job will read the tiers: such a ping says its MRR is not known (NO_KEY), unmarked, rather
than a "being computed" nothing would ever edit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.blocks.subscriptions import Change, SubscriptionView, subscription_message
from bot.stripe import tiers
from bot.subscriptions.facts import SubscriptionFacts
from bot.subscriptions.mrr import minor
from queries import late_churn as late_q
from queries import outbox
from queries import subscriptions as q
from queries.discounts import Recomputed
from queries.executor import Executor

MARK: Final = "mrr_computing"
COMPUTING: Final = "being computed (tiered price)"
NO_KEY: Final = "not known: tiered price (set STRIPE_API_KEY to read it)"  # no job will read it, nor tell the ping
# Read, but still not known: a price Stripe no longer has (a deleted legacy Plan), or a Discount gone before it was.
UNKNOWN: Final = "not known (Stripe could not say its price)"
GAINS: Final = frozenset({Change.NEW, Change.REACTIVATED, Change.ADDED})
LOSSES: Final = frozenset({Change.CHURNED, Change.ENDED})


def computing(f: SubscriptionFacts) -> bool:
    """Whether the event's MRR (now or before it) leaves out a tiered price whose tiers are still to be read."""
    return bool(tiers.ids_of(f.pricing) | tiers.ids_of(f.before_pricing))


def marked(payload: dict[str, Any], v: SubscriptionView, event_id: str) -> dict[str, Any]:
    """The ping's payload, with what it shows kept to render it again once its MRR is known."""
    return {**payload, MARK: {
        "event_id": event_id, "change": v.change.value, "subscription_id": v.subscription_id, "plan": v.plan,
        "previous_plan": v.previous_plan, "currency": v.currency, "occurred_at": v.occurred_at.isoformat(),
        "cancels_on": v.cancels_on.isoformat() if v.cancels_on else None}}


def _time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def told(mark: Mapping[str, Any], r: Recomputed) -> SubscriptionView:
    """The ping's view with the snapshot's recomputed MRR (MRR units): what a gain adds, a loss loses, a plan
    change moves; a cancellation's MRR at risk or kept."""
    change, now, before = Change(mark["change"]), r.mrr, r.before_mrr or 0
    occurred = _time(mark["occurred_at"]) or dt.datetime.now(dt.UTC)
    v = SubscriptionView(change=change, subscription_id=str(mark["subscription_id"]), plan=mark.get("plan"),
                         currency=str(mark["currency"]), mrr=minor(now), delta=0, occurred_at=occurred,
                         previous_plan=mark.get("previous_plan"), cancels_on=_time(mark.get("cancels_on")))
    if change in GAINS:
        v = replace(v, delta=minor(now))
    elif change in LOSSES:
        v = replace(v, mrr=minor(before), delta=-minor(before))
    elif change is Change.PLAN:
        v = replace(v, delta=minor(now - before))
    return replace(v, unknown=UNKNOWN) if r.state == "missing" else v


def churn_key(subscription_id: str, stretch: str | None) -> str:
    """A farewell's dedupe key: one per stretch of paying (bot/subscriptions/apply.py _dedupe_key)."""
    return f"sub-churned:{subscription_id}" + (f":{stretch}" if stretch is not None else "")


def lost(loss: late_q.TieredLoss, *, read: bool = True) -> SubscriptionView:
    """A tiered churn's view: what the ledger says it lost; a subscription ended when its customer pays on another
    one. A start still 0 once read is a price Stripe could not say (gone, or tiers in another currency); one
    awaiting its tiers where none will be read (`read` False: no STRIPE_API_KEY) is not known."""
    v = SubscriptionView(change=Change.ENDED if loss.others_paying else Change.CHURNED,
                         subscription_id=loss.subscription_id, plan=loss.plan, currency=loss.currency,
                         mrr=minor(loss.start), delta=-minor(loss.start), occurred_at=loss.at)
    if loss.awaiting:
        return replace(v, unknown=COMPUTING if read else NO_KEY)
    return v if loss.start > 0 else replace(v, unknown=UNKNOWN)


async def tiered_churns(db: Executor, events: Sequence[tuple[int, str, str]], *, tz: ZoneInfo, read: bool = True
                        ) -> list[tuple[int, str, dict[str, Any]]]:
    """The churn pings (index, dedupe key, payload) owed by a batch's events on tiered prices (index in the batch,
    event id, subscription id): each event's, or the next snapshot's when the event is what it moves from. Those
    the ledger says lost nothing earn none; without a job to read the tiers (`read` False) none waits to be told."""
    own, first = {e: i for i, e, _ in events}, {sub: i for i, _, sub in reversed(events)}
    losses = [x for x in await late_q.tiered_losses(db, [e for _, e, _ in events]) if x.awaiting or x.start > 0]
    moved = await q.movements(db, [x.event_id for x in losses])
    out = []
    for x in losses:
        v, m = lost(x, read=read), moved.get(x.event_id)
        payload = subscription_message(v, tz=tz).as_payload()
        key = churn_key(x.subscription_id, m.stretch if m is not None else None)
        out.append((own.get(x.event_id, first[x.subscription_id]), key,
                    marked(payload, v, x.event_id) if x.awaiting and read else payload))
    return out


async def _keys(db: Executor, subscription_id: str, event_ids: Sequence[str], *, churns: bool) -> list[str]:
    """The dedupe keys a ping of these events may have (bot/subscriptions/apply.py _dedupe_key): a welcome's, or one
    per event; with `churns`, a farewell's of any stretch of the subscription."""
    keys = [f"sub-new:{subscription_id}"] + [k for e in event_ids for k in (f"sub-new:{subscription_id}:{e}",
                                                                             f"sub:{e}")]
    if churns:
        keys += [churn_key(subscription_id, s) for s in [None, *await late_q.event_ids(db, subscription_id)]]
    return keys


def _told(mark: Mapping[str, Any], r: Recomputed | None, loss: late_q.TieredLoss | None) -> SubscriptionView | None:
    """What a waiting ping now shows; None while it cannot say more (its loss still waits to be read)."""
    if Change(mark["change"]) in LOSSES and loss is not None:
        return None if loss.awaiting else lost(loss)
    return told(mark, r) if r is not None else None


async def tell(db: Executor, subscription_id: str, rows: Sequence[Recomputed], *, tz: ZoneInfo) -> int:
    """Tell the pings of these recomputed snapshots (and of the churns moving from them) their MRR; how many were
    told. Called in the transaction that stores the snapshots, under the subscription's intake lock."""
    by_event = {r.event_id: r for r in rows}
    losses = {x.event_id: x for x in await late_q.tiered_losses(db, list(by_event))}
    events = sorted(set(by_event) | set(losses))
    keys = await _keys(db, subscription_id, events, churns=bool(losses))
    pings = await q.computing_pings(db, keys, events, mark=MARK)
    told_ = 0
    for ping in pings:
        view = _told(ping.mark, by_event.get(ping.event_id), losses.get(ping.event_id))
        if view is None:
            continue
        told_ += 1
        payload = subscription_message(view, tz=tz).as_payload()
        if ping.untried:
            await q.rewrite_ping(db, ping.id, json.dumps(payload))
        if not ping.held:  # it is out, or may be on its way with "being computed": edit it once it is
            await outbox.enqueue(db, dedupe_key=f"{ping.dedupe_key}:mrr", channel=ping.channel, kind=ping.kind,
                                 payload=payload, op="update", target_id=ping.id)
    return told_
