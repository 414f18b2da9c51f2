"""Discounts sent as ids: what a snapshot keeps to recompute its MRR, and reading them back from Stripe.

From 2025-03-31.basil on, a Subscription's `discounts` and each item's `discounts` are Discount ids in webhooks;
their terms are those of the Discount's coupon (`coupon` in basil, `source.coupon` from 2025-09-30.clover on, which
is not expanded by default) and the Discount's own `end`. The job reads them with
GET /v1/subscriptions/{id}?expand[]=discounts&expand[]=items.data.discounts — one request for the subscription's
and its items' Discounts — and, where a coupon comes as an id (clover), GET /v1/coupons/{id} once per coupon.
There is no endpoint that reads a Discount by id, so one removed from the subscription before it was read (or
whose coupon was deleted, in clover) stays unknown. A tiered price comes without its tiers: the pricing keeps its
item by price id, read by the same job (bot/stripe/tiers.py).
https://docs.stripe.com/api/discounts/object · https://docs.stripe.com/api/coupons/object ·
https://docs.stripe.com/changelog/clover/2025-09-30/add-discount-source-property · https://docs.stripe.com/expand
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bot.stripe import tiers
from bot.stripe.events_api import CursorGone, StripeApi
from bot.stripe.fields import integer, mapping, stripe_id
from bot.subscriptions.pricing import Terms, amounts_off, ids_of, package_of

SUBSCRIPTION_EXPAND = (("expand[]", "discounts"), ("expand[]", "items.data.discounts"))


def _list(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        value = value.get("data")
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def coupon_terms(coupon: Mapping[str, Any], end: Any) -> dict[str, Any]:
    """A Coupon object's terms, with its Discount's `end`."""
    percent = coupon.get("percent_off")
    number = isinstance(percent, int | float) and not isinstance(percent, bool)
    currency = coupon.get("currency")
    return {"percent_off": str(percent) if number else None, "amount_off": integer(coupon, "amount_off"),
            "currency": currency.upper() if isinstance(currency, str) else None, "amounts_off": amounts_off(coupon),
            "duration": coupon.get("duration") if isinstance(coupon.get("duration"), str) else "forever",
            "end": end if isinstance(end, int) and not isinstance(end, bool) else None}


def _coupon(discount: Mapping[str, Any]) -> Any:
    """The Discount's coupon: an object, an id (clover does not expand it), or None."""
    return discount.get("coupon") or mapping(discount, "source").get("coupon")


def ref(discount: Any) -> dict[str, Any] | None:
    """A pricing ref: the terms when the Discount and its coupon are expanded, else the Discount id to read."""
    if isinstance(discount, str):
        return {"id": discount}
    if not isinstance(discount, Mapping):
        return None
    coupon = _coupon(discount)
    if isinstance(coupon, Mapping):
        return {"terms": coupon_terms(coupon, discount.get("end"))}
    discount_id = stripe_id(discount)
    return {"id": discount_id} if discount_id else None


def discounts_of(obj: Mapping[str, Any]) -> list[Any]:
    """An object's Discounts: its `discounts` list, ids in webhooks. Before basil the legacy single `discount` comes
    too, expanded, and is one of them: taken in place of its id, its coupon's terms need no read (and a removed one,
    in previous_attributes, could not be read at all)."""
    listed, legacy = _list(obj.get("discounts")), obj.get("discount")
    if not isinstance(legacy, Mapping):
        return listed
    if not listed:
        return [legacy]
    legacy_id = stripe_id(legacy)
    return [legacy if legacy_id is not None and d == legacy_id else d for d in listed]


def _refs(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for r in (ref(d) for d in discounts_of(obj)) if r is not None]


def pricing(obj: Mapping[str, Any], *, counted: bool) -> dict[str, Any]:
    """What the MRR of a Subscription (or its previous_attributes merged over it) is made of."""
    items = []
    for raw in _list(obj.get("items")):
        if not isinstance(raw, Mapping):
            continue  # a null or odd entry prices nothing, as bot/stripe/subscriptions.item
        price = mapping(raw, "price") or mapping(raw, "plan")
        recurring = mapping(price, "recurring")
        amount = price.get("unit_amount") if price.get("unit_amount") is not None else price.get("unit_amount_decimal")
        interval = recurring.get("interval") or price.get("interval")
        priced: dict[str, Any] | None = None if amount is None else {"unit_amount": str(amount)}
        if tiers.tiered(price):  # its tiers are read by price id unless the event carries them (expanded)
            found = tiers.of_price(price)
            priced = {"tiered": True, "tiers": found} if found else {"tiered": True} if stripe_id(price) else None
        if priced is None or interval is None or recurring.get("usage_type") == "metered":
            continue  # what MRR cannot price (metered), as bot/stripe/subscriptions.item
        quantity, (divide_by, round_up) = integer(raw, "quantity"), package_of(price)
        items.append({"price": stripe_id(price), **priced, "interval": interval,
                      "interval_count": integer(recurring, "interval_count") or 1,
                      "quantity": 1 if quantity is None else max(quantity, 0), "discounts": _refs(raw),
                      **({"divide_by": divide_by, "round": "up" if round_up else "down"} if divide_by > 1 else {})})
    return {"counted": counted, "items": items, "discounts": _refs(obj)}


def needs_reading(*pricings: Mapping[str, Any] | None) -> bool:
    """Whether any of these pricings names a Discount by id only, or has a tiered price whose tiers it lacks."""
    return any(ids_of(p) or tiers.ids_of(p) for p in pricings)


async def read(api: StripeApi, subscription_id: str, coupons: dict[str, Mapping[str, Any]]) -> dict[str, Terms]:
    """The terms of every Discount on the subscription and its items now, by Discount id (`coupons` caches the
    coupons read by id across calls)."""
    try:
        sub = await api.get(f"/v1/subscriptions/{quote(subscription_id, safe='')}", SUBSCRIPTION_EXPAND)
    except CursorGone:  # 404 resource_missing: no Discount of it can be read any more
        return {}
    found = _list(sub.get("discounts")) + [d for i in _list(sub.get("items")) for d in _list(i.get("discounts"))]
    terms: dict[str, Terms] = {}
    for discount in found:
        if not isinstance(discount, Mapping) or not (discount_id := stripe_id(discount)):
            continue
        coupon = _coupon(discount)
        if isinstance(coupon, str):
            if coupon not in coupons:
                try:
                    coupons[coupon] = await api.get(f"/v1/coupons/{quote(coupon, safe='')}")
                except CursorGone:  # a deleted coupon: its Discount's terms stay unknown
                    coupons[coupon] = {}
            coupon = coupons[coupon] or None
        if isinstance(coupon, Mapping):
            terms[discount_id] = coupon_terms(coupon, discount.get("end"))
    return terms
