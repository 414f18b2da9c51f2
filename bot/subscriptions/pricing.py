"""A snapshot's MRR recomputed once the discounts Stripe sent as ids are read (bot/stripe/discount_job.py).

A snapshot whose event listed Discount ids keeps what its MRR is made of, as JSON (`subscription_events.pricing`):
    {"counted": true, "discounts": [ref, …],
     "items": [{"unit_amount": "1900", "interval": "month", "interval_count": 1, "quantity": 2, "discounts": [ref]}]}
where a ref is {"id": "di_…"} (to read) or {"terms": terms} (the event carried them), and terms are
    {"percent_off": "25.5" | null, "amount_off": 500 | null, "currency": "usd" | null,
     "duration": "forever" | "repeating" | "once", "end": unix seconds | null}.
Recomputing is bot/subscriptions/mrr.py's arithmetic at the snapshot's own time, so a repeating coupon that had
ended by then no longer counts. An amount_off in another currency than the subscription's is not applied (Stripe
would use the coupon's `currency_options`, which MRR does not read).
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


def coupon_of(terms: Terms, *, currency: str) -> Coupon:
    """The Coupon these terms give a subscription billed in `currency`."""
    percent = terms.get("percent_off")
    amount = terms.get("amount_off")
    same = str(terms.get("currency") or currency).upper() == currency.upper()
    end = terms.get("end")
    return Coupon(percent_off=Fraction(str(percent)) if percent is not None else None,
                  amount_off=int(amount) if amount is not None and same else None,
                  duration=str(terms.get("duration") or "forever"),
                  end=dt.datetime.fromtimestamp(int(end), dt.UTC) if end is not None else None)


def _coupons(refs: Iterable[Mapping[str, Any]], read: Mapping[str, Terms | None], currency: str) -> tuple[Coupon, ...]:
    found = [r["terms"] if "terms" in r else read.get(str(r.get("id"))) for r in refs]
    return tuple(coupon_of(t, currency=currency) for t in found if t is not None)


def mrr_of(pricing: Mapping[str, Any], read: Mapping[str, Terms | None], *, currency: str, at: dt.datetime) -> int:
    """The MRR the pricing gives at `at` with the Discounts read so far (an unread or gone one is left out)."""
    items = [Item(price_id=str(i.get("price") or ""), name="", unit_amount=Fraction(str(i["unit_amount"])),
                  interval=str(i["interval"]), interval_count=int(i.get("interval_count") or 1),
                  quantity=int(i.get("quantity") or 0), coupons=_coupons(i.get("discounts") or (), read, currency))
             for i in pricing.get("items") or ()]
    status = "active" if pricing.get("counted") else "canceled"
    return counted_mrr(status, items, _coupons(pricing.get("discounts") or (), read, currency), at=at)
