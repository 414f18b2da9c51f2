"""Subscription pings: a new subscriber, one back, a plan change, a cancellation scheduled or withdrawn, a churn; and
for a customer paying on another subscription, a subscription added or ended (no subscriber comes or goes).

Each says what the change does to MRR, not what was paid: the payment of a subscription's invoice is the sale
ping (one order, one ping), and renewals are quiet (SUBSCRIPTION_RENEWALS)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.blocks.elements import context, fields, header, local, message, when
from bot.blocks.message import Message, truncate
from bot.blocks.text import escape_mrkdwn, inline
from bot.money import format_money

MAX_PLAN_CHARS = 120


class Change(StrEnum):
    """What a subscription event changed, as far as the store's owner cares."""

    NEW = "new"
    REACTIVATED = "reactivated"  # paying again after having paid: reactivation MRR (same subscription or customer)
    PLAN = "plan"
    CANCEL_SCHEDULED = "cancel_scheduled"
    CANCEL_WITHDRAWN = "cancel_withdrawn"
    CHURNED = "churned"
    # A customer paying on another subscription starts or stops paying on this one: expansion or contraction of
    # the customer's MRR, not a subscriber coming or going (subscribers are customers, migration 0053).
    ADDED = "added"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """One subscription change as its ping shows it; money in minor units of `currency` a month."""

    change: Change
    subscription_id: str
    plan: str | None
    currency: str
    mrr: int  # the subscription's MRR after the change (before it, for a churn)
    delta: int  # what the change adds to the store's MRR (negative for a downgrade or a churn)
    occurred_at: datetime
    previous_plan: str | None = None
    cancels_on: datetime | None = None
    # Said in place of the MRR figures while they are not known, never "+$0.00": "being computed (tiered price)"
    # until the discounts job reads the price's tiers (and edits the ping), or why they stay unknown.
    unknown: str | None = None


def signed_money(amount: int, currency: str) -> str:
    """"+$19.00", "−$5.00" (a real minus sign), "±$0.00"."""
    sign = "+" if amount > 0 else "−" if amount < 0 else "±"
    return sign + format_money(abs(amount), currency)


def _plan(text: str | None) -> str:
    return inline(text, MAX_PLAN_CHARS) if text and text.strip() else "Unknown plan"


def _title(v: SubscriptionView) -> str:
    match v.change:
        case Change.NEW:
            return "🎉 New subscriber"
        case Change.REACTIVATED:
            return "🔁 Subscriber back"
        case Change.PLAN:
            return "⬆️ Plan change" if v.delta > 0 else "⬇️ Plan change" if v.delta < 0 else "🔀 Plan change"
        case Change.CANCEL_SCHEDULED:
            return "⏳ Cancellation scheduled"
        case Change.CANCEL_WITHDRAWN:
            return "↩️ Cancellation withdrawn"
        case Change.ADDED:
            return "➕ Subscription added"
        case Change.ENDED:
            return "➖ Subscription ended"
    return "👋 Subscriber churned"


def _pairs(v: SubscriptionView, tz: ZoneInfo) -> list[tuple[str, str]]:
    per_month = f"{format_money(v.mrr, v.currency)}/mo" if v.unknown is None else v.unknown
    mrr = escape_mrkdwn(signed_money(v.delta, v.currency) if v.unknown is None else v.unknown)
    match v.change:
        case Change.PLAN:
            return [("Plan", f"{_plan(v.previous_plan)} → {_plan(v.plan)}"), ("MRR", mrr),
                    ("Now", escape_mrkdwn(per_month))]
        case Change.CANCEL_SCHEDULED:
            on = f"{local(v.cancels_on, tz):%a %d %b %Y}" if v.cancels_on else "the period's end"
            return [("Plan", _plan(v.plan)), ("Cancels", f"at period end on {on}"),
                    ("MRR at risk", escape_mrkdwn(per_month))]
        case Change.CANCEL_WITHDRAWN:
            return [("Plan", _plan(v.plan)), ("MRR kept", escape_mrkdwn(per_month))]
    return [("Plan", _plan(v.plan)), ("MRR", mrr)]


def subscription_message(v: SubscriptionView, *, tz: ZoneInfo) -> Message:
    """The ping for one subscription change."""
    title = _title(v)
    pairs = [*_pairs(v, tz), ("Subscription", escape_mrkdwn(truncate(v.subscription_id, 60)))]
    blocks = [header(title), fields(*pairs), context(f"⏰ {when(v.occurred_at, tz)}")]
    text = f"{title}: {_plain_plan(v)} — MRR {signed_money(v.delta, v.currency) if v.unknown is None else v.unknown}"
    if v.change is Change.CANCEL_SCHEDULED:
        on = f" on {local(v.cancels_on, tz):%d %b %Y}" if v.cancels_on else ""
        text = f"{title}: {_plain_plan(v)} cancels at period end{on}"
    elif v.change is Change.CANCEL_WITHDRAWN:
        text = f"{title}: {_plain_plan(v)} stays"
    return message(text, blocks)


def _plain_plan(v: SubscriptionView) -> str:
    plan = (v.plan or "Unknown plan").strip()[:MAX_PLAN_CHARS]
    if v.change is Change.PLAN:
        return f"{(v.previous_plan or 'Unknown plan').strip()[:MAX_PLAN_CHARS]} → {plan}"
    return plan
