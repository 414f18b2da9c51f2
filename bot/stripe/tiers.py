"""Tiered prices (`billing_scheme` tiered): what a quantity costs, and reading the tiers Stripe does not send.

A Price's `tiers` are not included by default — webhooks never carry them, only GET /v1/prices/{id}?expand[]=tiers
does — and they cannot change once the price exists (Update a price takes no `tiers`), so one read per price id is
kept for good. Volume: every unit at the tier holding the quantity, plus that tier's flat_amount. Graduated: each
unit at the tier it falls in, plus the flat_amount of every tier reached. A tier's `up_to` is inclusive (null: the
last, unbounded tier); its amounts come as integers or as `*_decimal` strings finer than a minor unit. The tiers
are in the price's own `currency`: a subscription billed in another (the price's `currency_options`) is not priced.
https://docs.stripe.com/api/prices/object#price_object-tiers · https://docs.stripe.com/products-prices/pricing-models#tiered-pricing
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any
from urllib.parse import quote

from bot.stripe.events_api import CursorGone, StripeApi

PRICE_EXPAND = (("expand[]", "tiers"),)
MODES = frozenset({"volume", "graduated"})

# A price's tiers as read: {"currency": "usd", "mode": "volume", "tiers": [{"up_to": 5 | None, "unit": "700",
# "flat": "0"}, …]}; None when the price is gone (a deleted legacy Plan) or its tiers make no sense.
Tiers = Mapping[str, Any]


def _amount(tier: Mapping[str, Any], name: str) -> Fraction | None:
    """A tier's `unit_amount` or `flat_amount`: the decimal string when set (finer), else the integer, else 0."""
    decimal, whole = tier.get(f"{name}_decimal"), tier.get(name)
    try:
        if isinstance(decimal, str) and decimal:
            return Fraction(decimal)
    except ValueError:
        return None
    if whole is None:
        return Fraction(0)
    return Fraction(whole) if isinstance(whole, int) and not isinstance(whole, bool) else None


def of_price(price: Mapping[str, Any]) -> Tiers | None:
    """The tiers of a Price object that carries them (expanded), as kept; None when it does not or they are odd."""
    mode, raw, currency = price.get("tiers_mode"), price.get("tiers"), price.get("currency")
    if mode not in MODES or not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        return None
    tiers: list[dict[str, Any]] = []
    for tier in raw:
        if not isinstance(tier, Mapping):
            return None
        up_to, unit, flat = tier.get("up_to"), _amount(tier, "unit_amount"), _amount(tier, "flat_amount")
        bounded = isinstance(up_to, int) and not isinstance(up_to, bool) and up_to >= 0
        if unit is None or flat is None or not (up_to is None or bounded):
            return None
        tiers.append({"up_to": up_to, "unit": str(unit), "flat": str(flat)})
    if tiers[-1]["up_to"] is not None:
        return None  # Stripe requires an unbounded last tier: without one some quantities have no price
    return {"currency": currency.upper() if isinstance(currency, str) else None, "mode": mode, "tiers": tiers}


def total(tiers: Tiers, quantity: int) -> Fraction:
    """What `quantity` units cost an interval (minor units, exact); no units cost nothing."""
    rows = [(t["up_to"], Fraction(t["unit"]), Fraction(t["flat"])) for t in tiers["tiers"]]
    if quantity <= 0:
        return Fraction(0)
    if tiers["mode"] == "volume":
        up_to, unit, flat = next(r for r in rows if r[0] is None or quantity <= r[0])
        return unit * quantity + flat
    amount, below = Fraction(0), 0
    for up_to, unit, flat in rows:  # graduated: fill each tier in turn
        top = quantity if up_to is None else min(quantity, up_to)
        if top > below:
            amount += unit * (top - below) + flat
        if up_to is None or quantity <= up_to:
            break
        below = up_to
    return amount


def unit_amount(tiers: Tiers | None, quantity: int, *, currency: str) -> Fraction | None:
    """The amount per unit that makes `quantity` cost what the tiers say (the total over the quantity, exact), in a
    subscription billed in `currency`; None when the tiers are unknown or in another currency."""
    if tiers is None or (tiers.get("currency") or "").upper() != currency.upper():
        return None
    amount = total(tiers, quantity)
    return amount / quantity if quantity > 0 else amount


async def read(api: StripeApi, price_id: str) -> Tiers | None:
    """GET /v1/prices/{id}?expand[]=tiers: the price's tiers, or None when the price is gone or not tiered."""
    try:
        price = await api.get(f"/v1/prices/{quote(price_id, safe='')}", PRICE_EXPAND)
    except CursorGone:  # 404 resource_missing: a legacy Plan deleted since
        return None
    return of_price(price)


def tiered(price: Mapping[str, Any]) -> bool:
    """Whether a Price (or legacy Plan) bills by tiers."""
    return price.get("billing_scheme") == "tiered"


def ids_of(pricing: Mapping[str, Any] | None) -> set[str]:
    """The price ids whose tiers a pricing (bot/subscriptions/pricing.py, its tiered items) still has to read."""
    return {str(i["price"]) for i in (pricing or {}).get("items") or () if i.get("tiered") and "tiers" not in i}


def priced(pricing: Mapping[str, Any], read: Mapping[str, Tiers | None], *,
           currency: str) -> tuple[dict[str, Any], bool]:
    """The pricing with each tiered item given its amount per unit from its tiers (carried, or `read` by price id),
    and whether one could not be priced (gone, or tiers in another currency): that item is left out."""
    items, gone = [], False
    for item in pricing.get("items") or ():
        if item.get("tiered"):
            found = item["tiers"] if "tiers" in item else read.get(str(item.get("price")))
            amount = unit_amount(found, int(item.get("quantity") or 0), currency=currency)
            if amount is None:
                gone = True
                continue
            item = {**item, "unit_amount": str(amount)}
        items.append(item)
    return {**pricing, "items": items}, gone
