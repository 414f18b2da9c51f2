"""A snapshot's MRR recomputed once the discounts Stripe sent as ids are read (bot/stripe/discount_job.py).

A snapshot whose event listed Discount ids keeps what its MRR is made of, as JSON (`subscription_events.pricing`):
    {"counted": true, "discounts": [ref, …],
     "items": [{"unit_amount": "1900", "interval": "month", "interval_count": 1, "quantity": 2, "discounts": [ref],
                "divide_by": 10, "round": "up"}]}
(`divide_by` and `round` only for a package price, its `transform_quantity`), where a ref is {"id": "di_…"} (to
read) or {"terms": terms} (the event carried them), and terms are
    {"percent_off": "25.5" | null, "amount_off": 500 | null, "currency": "usd" | null,
     "amounts_off": {"EUR": 450, …} (the coupon's `currency_options`, when Stripe sent them),
     "duration": "forever" | "repeating" | "once", "end": unix seconds | null}.
Recomputing is bot/subscriptions/mrr.py's arithmetic at the snapshot's own time, so a repeating coupon that had
ended by then no longer counts. An amount_off in another currency than the subscription's is applied in the
subscription's currency when the coupon's `currency_options` name it (Stripe sends them only when expanded), else
not at all: no exchange rate is applied to it.
https://docs.stripe.com/api/coupons/object#coupon_object-currency_options
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from bot.subscriptions.mrr import Coupon, Item, counted_mrr

Terms = Mapping[str, Any]


def _refs(pricing: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    yield from pricing.get("discounts") or ()
    for item in pricing.get("items") or ():
        yield from item.get("discounts") or ()


def ids_of(pricing: Mapping[str, Any] | None) -> set[str]:
    """The Discount ids a pricing still has to read."""
    return {str(r["id"]) for r in _refs(pricing or {}) if "id" in r}


def package_of(price: Mapping[str, Any]) -> tuple[int, bool]:
    """A price's package (`transform_quantity`, a legacy Plan's `transform_usage`): (units per package, whether a
    part package is billed); (1, True) for a price per unit or an odd transform."""
    transform = price.get("transform_quantity") or price.get("transform_usage")
    if not isinstance(transform, Mapping):
        return 1, True
    divide_by = transform.get("divide_by")
    if not isinstance(divide_by, int) or isinstance(divide_by, bool) or divide_by < 1:
        return 1, True
    return divide_by, transform.get("round") != "down"


def amounts_off(coupon: Mapping[str, Any]) -> dict[str, int]:
    """A Coupon object's amount_off in other currencies, by upper-case code (its `currency_options`)."""
    options = coupon.get("currency_options")
    if not isinstance(options, Mapping):
        return {}
    found = {str(code).upper(): o.get("amount_off") for code, o in options.items() if isinstance(o, Mapping)}
    return {code: a for code, a in found.items() if isinstance(a, int) and not isinstance(a, bool)}


def amount_off_in(currency: str, amount_off: Any, coupon_currency: Any, amounts: Any) -> int | None:
    """An amount_off as it applies to a subscription billed in `currency`: the coupon's own amount in its currency,
    its `currency_options` amount (`amounts`, see amounts_off) in another, else None (MRR applies no rate)."""
    if isinstance(amounts, Mapping) and isinstance(amounts.get(currency.upper()), int):
        return int(amounts[currency.upper()])
    if isinstance(amount_off, bool) or not isinstance(amount_off, int):
        return None
    same = not isinstance(coupon_currency, str) or coupon_currency.upper() == currency.upper()
    return amount_off if same else None


def coupon_of(terms: Terms, *, currency: str) -> Coupon:
    """The Coupon these terms give a subscription billed in `currency`."""
    percent = terms.get("percent_off")
    end = terms.get("end")
    return Coupon(percent_off=Fraction(str(percent)) if percent is not None else None,
                  amount_off=amount_off_in(currency, terms.get("amount_off"), terms.get("currency"),
                                           terms.get("amounts_off")),
                  duration=str(terms.get("duration") or "forever"),
                  end=dt.datetime.fromtimestamp(int(end), dt.UTC) if end is not None else None)


def _coupons(refs: Iterable[Mapping[str, Any]], read: Mapping[str, Terms | None], currency: str) -> tuple[Coupon, ...]:
    found = [r["terms"] if "terms" in r else read.get(str(r.get("id"))) for r in refs]
    return tuple(coupon_of(t, currency=currency) for t in found if t is not None)


def mrr_of(pricing: Mapping[str, Any], read: Mapping[str, Terms | None], *, currency: str, at: dt.datetime) -> int:
    """The MRR the pricing gives at `at` (MRR units) with the Discounts read so far (an unread or gone one is left
    out)."""
    items = [Item(price_id=str(i.get("price") or ""), name="", unit_amount=Fraction(str(i["unit_amount"])),
                  interval=str(i["interval"]), interval_count=int(i.get("interval_count") or 1),
                  quantity=int(i.get("quantity") or 0), coupons=_coupons(i.get("discounts") or (), read, currency),
                  package=int(i.get("divide_by") or 1), round_up=i.get("round") != "down")
             for i in pricing.get("items") or ()]
    status = "active" if pricing.get("counted") else "canceled"
    return counted_mrr(status, items, _coupons(pricing.get("discounts") or (), read, currency), at=at)
