"""customer.subscription.created|updated|deleted in every API version → a SUBSCRIPTION event with its facts.

Shapes: before 2025-03-31.basil `current_period_start/end` sit on the Subscription and a single `discount` may be
set; from basil on the period moved to each item and discounts are the `discounts` list (ids, or expanded Discount
objects); 2025-09-30.clover moved `Discount.coupon` to `Discount.source.coupon`. An updated event's
`data.previous_attributes` holds the old values of whatever changed, which tells a plan change (items) from a
scheduled cancellation (cancel_at_period_end, cancel_at) from a renewal (the period only).
https://docs.stripe.com/api/subscriptions/object · https://docs.stripe.com/api/events/object#event_object-data-previous_attributes
https://docs.stripe.com/changelog/basil/2025-03-31/deprecate-subscription-current-period-start-and-end
https://docs.stripe.com/changelog/clover/2025-09-30/add-discount-source-property
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

from bot.intake.events import Kind, MalformedEvent, PaymentEvent
from bot.stripe import discounts, tiers
from bot.stripe.build import Envelope, Ids, new_event
from bot.stripe.fields import coalesce, currency, first_item, integer, mapping, string, stripe_id, timestamp
from bot.subscriptions.facts import SubscriptionFacts
from bot.subscriptions.mrr import MONTHS_PER, Coupon, Item, counted_mrr, minor, subscription_mrr
from bot.subscriptions.pricing import amount_off_in, amounts_off, package_of

MAX_PLAN_CHARS = 120


def _list(value: Any) -> list[Any]:
    """The entries of a JSON array or of a Stripe list object's `data`."""
    if isinstance(value, Mapping):
        value = value.get("data")
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def coupon(discount: Any, *, currency: str) -> Coupon | None:
    """An expanded Discount's coupon (basil `coupon`, clover `source.coupon`) on a subscription billed in
    `currency`; None for a bare id. An amount_off in another currency applies only through the coupon's
    `currency_options` (as pricing.coupon_of: no exchange rate)."""
    if not isinstance(discount, Mapping):
        return None
    c = discount.get("coupon") or mapping(discount, "source").get("coupon")
    if not isinstance(c, Mapping):
        return None
    percent = c.get("percent_off")
    pct = Fraction(str(percent)) if isinstance(percent, int | float) and not isinstance(percent, bool) else None
    amount = amount_off_in(currency, integer(c, "amount_off"), c.get("currency"), amounts_off(c))
    return Coupon(percent_off=pct, amount_off=amount, duration=string(c, "duration") or "forever",
                  end=timestamp(discount.get("end")))


def coupons(obj: Mapping[str, Any], *, currency: str) -> tuple[Coupon, ...]:
    """The coupons of an object's Discounts that come expanded (see discounts.discounts_of)."""
    found = [coupon(d, currency=currency) for d in discounts.discounts_of(obj)]
    return tuple(c for c in found if c is not None)


def _unit_amount(price: Mapping[str, Any], plan: Mapping[str, Any]) -> Fraction | None:
    amount = integer(price, "unit_amount")
    if amount is not None:
        return Fraction(amount)
    decimal = string(price, "unit_amount_decimal")
    try:
        return Fraction(decimal) if decimal else None
    except ValueError:
        return None


def _tiered_amount(price: Mapping[str, Any], plan: Mapping[str, Any], quantity: int, currency: str) -> Fraction:
    """A tiered price's amount per unit at this quantity when the event carries its tiers (expanded); else 0 until
    the discounts job reads them (bot/stripe/tiers.py, discounts.pricing keeps the item to read)."""
    found = tiers.of_price(price) if "tiers" in price else tiers.of_price(plan)
    amount = tiers.unit_amount(found, quantity, currency=currency)
    return Fraction(0) if amount is None else amount


def item(raw: Any, *, currency: str) -> Item | None:
    """A subscription item with a per-unit, package or tiered recurring price, in a subscription billed in
    `currency`; None for what MRR cannot price (metered)."""
    if not isinstance(raw, Mapping):
        return None
    price, plan = mapping(raw, "price"), mapping(raw, "plan")
    recurring = mapping(price, "recurring")
    quantity = 1 if (given := integer(raw, "quantity")) is None else max(given, 0)
    amount = _tiered_amount(price, plan, quantity, currency) if tiers.tiered(price or plan) \
        else _unit_amount(price, plan)
    interval = string(recurring, "interval") or string(plan, "interval")
    count = integer(recurring, "interval_count") or 1
    if amount is None or interval not in MONTHS_PER or recurring.get("usage_type") == "metered" or count < 1:
        return None
    product = price.get("product")
    name = coalesce(string(price, "nickname"), string(product, "name") if isinstance(product, Mapping) else None,
                    stripe_id(price), stripe_id(raw)) or "plan"
    package, round_up = package_of(price or plan)
    return Item(price_id=stripe_id(price) or name, name=name, unit_amount=amount, interval=interval,
                interval_count=count, quantity=quantity,
                coupons=coupons(raw, currency=currency), package=package, round_up=round_up)


def items(obj: Mapping[str, Any], *, currency: str) -> list[Item]:
    """The priced items of a Subscription (or of previous_attributes' old `items`)."""
    return [i for i in (item(raw, currency=currency) for raw in _list(obj.get("items"))) if i is not None]


def plan_label(parts: Sequence[Item]) -> str | None:
    """"Pro monthly", "Seats × 3", or the items joined with "+"."""
    if not parts:
        return None
    label = " + ".join(f"{i.name} × {i.quantity}" if i.quantity != 1 else i.name for i in parts)
    return label if len(label) <= MAX_PLAN_CHARS else label[:MAX_PLAN_CHARS - 1] + "…"


def _signature(parts: Sequence[Item]) -> tuple[tuple[str, int], ...]:
    return tuple((i.price_id, i.quantity) for i in parts)


def _paused(obj: Mapping[str, Any]) -> bool:
    """Whether payment collection is paused: `pause_collection` set (the status stays `active`, nothing is charged).
    https://docs.stripe.com/billing/subscriptions/pause-payment"""
    return isinstance(obj.get("pause_collection"), Mapping)


def _paused_at_trial_end(obj: Mapping[str, Any], ended_at: dt.datetime | None, trial_end: dt.datetime | None) -> bool:
    """An ended subscription whose trial ended before it and that Stripe pauses at a trial's end for want of a
    payment method (trial_settings.end_behavior.missing_payment_method = pause): it may never have paid."""
    behavior = mapping(mapping(obj, "trial_settings"), "end_behavior").get("missing_payment_method")
    return ended_at is not None and trial_end is not None and trial_end < ended_at and behavior == "pause"


def _ended_unpaid(status: str, ended_at: dt.datetime | None, trial_end: dt.datetime | None) -> bool:
    """Whether it ended in its trial, or as incomplete_expired (its first invoice never paid: Stripe's terminal
    state for that): it never paid, so its end loses nothing."""
    return (ended_at is not None and trial_end is not None and trial_end >= ended_at) or status == "incomplete_expired"


def _previous(obj: Mapping[str, Any], prev: Mapping[str, Any], at: dt.datetime, code: str) -> dict[str, Any]:
    """The previous_* facts: what previous_attributes says changed, the rest taken as unchanged."""
    if not prev:
        return {}
    was_paused = _paused(prev if "pause_collection" in prev else obj)
    status = string(prev, "status") or string(obj, "status") or "active"
    old_items = items(prev if "items" in prev else obj, currency=code)
    old_coupons = coupons(prev if ("discounts" in prev or "discount" in prev) else obj, currency=code)
    was_at_end = prev["cancel_at_period_end"] if "cancel_at_period_end" in prev else obj.get("cancel_at_period_end")
    was_at = prev.get("cancel_at") if "cancel_at" in prev else obj.get("cancel_at")
    return {"previous_status": status if "status" in prev else None,
            "previous_mrr": 0 if was_paused else counted_mrr(status, old_items, old_coupons, at=at),
            "previous_collection_paused": was_paused if "pause_collection" in prev else None,
            "previous_plan": plan_label(old_items), "previous_signature": _signature(old_items),
            "previous_cancel": was_at_end is True or was_at is not None}


def facts(obj: Mapping[str, Any], prev: Mapping[str, Any], at: dt.datetime) -> SubscriptionFacts:
    """The SubscriptionFacts of a Subscription object (and the event's previous_attributes)."""
    sub_id = stripe_id(obj)
    if sub_id is None:
        raise MalformedEvent("the subscription has no `id`")
    status = string(obj, "status") or "active"
    code = currency(obj) or currency(mapping(first_item(obj, "items"), "price"))
    if code is None:
        raise MalformedEvent(f"subscription {sub_id} names no currency")
    parts, discounts = items(obj, currency=code), coupons(obj, currency=code)
    period_end = timestamp(obj.get("current_period_end")) or timestamp(first_item(obj, "items").get(
        "current_period_end"))  # acacia: on the subscription; basil on: on each item
    ended = status in ("canceled", "incomplete_expired")
    ended_at = timestamp(obj.get("ended_at")) if ended else None
    trial_end = timestamp(obj.get("trial_end"))
    in_trial = _ended_unpaid(status, ended_at, trial_end)
    paused = _paused(obj)  # collecting nothing: no MRR now, and nothing a churn now loses
    return SubscriptionFacts(
        id=sub_id, customer=stripe_id(obj.get("customer")), status=status, currency=code,
        mrr=0 if paused else counted_mrr(status, parts, discounts, at=at),
        gross_mrr=0 if in_trial or paused else subscription_mrr(parts, discounts, at=at),
        plan=plan_label(parts), signature=_signature(parts),
        cancel_at_period_end=obj.get("cancel_at_period_end") is True, cancel_at=timestamp(obj.get("cancel_at")),
        current_period_end=period_end, started_at=timestamp(obj.get("start_date")),
        # Example payloads carry placeholder times on running subscriptions: only an ended one has ended.
        canceled_at=timestamp(obj.get("canceled_at")) if ended else None,
        ended_at=ended_at, collection_paused=paused,
        paused_at_trial_end=_paused_at_trial_end(obj, ended_at, trial_end),
        **_previous(obj, prev, at, code))


def _pricings(f: SubscriptionFacts, obj: Mapping[str, Any], prev: Mapping[str, Any], *,
              deleted: bool) -> SubscriptionFacts:
    """Keep what the MRR now and before is made of when a Discount is named by id only, or a tiered price comes
    without its tiers (read later)."""
    now = discounts.pricing(obj, counted=f.paying)
    before = None
    if deleted:  # a churn loses what the items are worth: 0 when it ended in its trial or paused, not for want of
        # tiers (gross_mrr leaves an unread tiered price out: counted, the job reads it and the ledger its loss)
        unpaid = _ended_unpaid(f.status, f.ended_at, timestamp(obj.get("trial_end")))
        before = discounts.pricing(obj, counted=not unpaid and not f.collection_paused)
    elif prev:
        was = {"items": prev["items"] if "items" in prev else obj.get("items"),
               "discounts": prev["discounts"] if "discounts" in prev else obj.get("discounts"),
               "discount": prev["discount"] if "discount" in prev else obj.get("discount")}
        before = discounts.pricing(was, counted=f.paying if f.was_paying is None else f.was_paying)
    if not discounts.needs_reading(now, before):
        return f
    return replace(f, pricing=now, before_pricing=before)


def subscription(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """customer.subscription.created / .updated / .deleted: a SUBSCRIPTION event (never a sale: the invoice is)."""
    f = facts(obj, env.previous, env.occurred_at)
    f = _pricings(f, obj, env.previous, deleted=env.event_type.endswith(".deleted"))
    return new_event(env, obj, Kind.SUBSCRIPTION, Ids(), amount=minor(f.mrr), email=None, name=None,
                     currency=f.currency, product=f.plan, subscription_id=f.id, subscription=f)
