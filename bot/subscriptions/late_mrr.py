"""A subscription ping whose MRR is not known at intake, told it once the discounts job has read what it lacked.

A tiered price comes in webhooks without its tiers (bot/stripe/tiers.py), so at intake the subscription's MRR leaves
the item out: its ping says the MRR is being computed rather than "+$0.00", and its payload keeps what it shows
(MARK: senders send only `text` and `blocks`). Once the discounts job (bot/stripe/discount_job.py) has recomputed
the event's snapshot, the ping is told, as a late decline reason is (bot/intake/declines.py): rewritten while nobody
can have sent it, and edited in place once it may be out.
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
from queries import outbox
from queries import subscriptions as q
from queries.discounts import Recomputed
from queries.executor import Executor

MARK: Final = "mrr_computing"
COMPUTING: Final = "being computed (tiered price)"
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


def _keys(subscription_id: str, event_ids: Sequence[str]) -> list[str]:
    """The dedupe keys a ping of these events may have (bot/subscriptions/apply.py _dedupe_key): a welcome's, or one
    per event. A churn of a subscription whose MRR is not known earns no ping: it loses nothing the ledger counts."""
    return [f"sub-new:{subscription_id}"] + [k for e in event_ids for k in (f"sub-new:{subscription_id}:{e}",
                                                                              f"sub:{e}")]


async def tell(db: Executor, subscription_id: str, rows: Sequence[Recomputed], *, tz: ZoneInfo) -> int:
    """Tell the pings of these recomputed snapshots their MRR; how many were told. Called in the transaction that
    stores the snapshots, under the subscription's intake lock."""
    by_event = {r.event_id: r for r in rows}
    pings = await q.computing_pings(db, _keys(subscription_id, list(by_event)), list(by_event), mark=MARK)
    for ping in pings:
        payload = subscription_message(told(ping.mark, by_event[ping.event_id]), tz=tz).as_payload()
        if ping.untried:
            await q.rewrite_ping(db, ping.id, json.dumps(payload))
        if not ping.held:  # it is out, or may be on its way with "being computed": edit it once it is
            await outbox.enqueue(db, dedupe_key=f"{ping.dedupe_key}:mrr", channel=ping.channel, kind=ping.kind,
                                 payload=payload, op="update", target_id=ping.id)
    return len(pings)
