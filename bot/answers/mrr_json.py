"""The `subscriptions` key of GET /api/monitoring/sales: MRR in minor units, per currency and for the main one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from queries.mrr import MrrFigures, MrrSummary


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _figures(c: MrrFigures) -> dict[str, Any]:
    return {"mrr": c.mrr, "mrrWeekAgo": c.mrr_week_ago, "newMrr": c.new, "reactivationMrr": c.reactivation,
            "expansionMrr": c.expansion, "contractionMrr": c.contraction, "churnedMrr": c.churned,
            "netNewMrr": c.net_new, "churned": c.churned_count, "active": c.active}


def subscriptions_json(s: MrrSummary | None, *, store: str | None = None) -> dict[str, Any] | None:
    """MRR now and a week ago, the movements since `since` (30 days), active subscribers; None if not looked up.

    The top-level money fields are in `currency`: the store currency when there is one (the MRR of subscriptions
    billed in it, 0 when none is), else the currency with the most MRR (USD when there is none); every currency's
    own figures are under `byCurrency`, and `notConverted` lists the MRR billed in other currencies than the
    store's (never converted: no rate is guessed). A trialing subscription is in `trialing`, not in MRR, and
    `tiers_unread` counts the paying ones on a tiered price left out of MRR (their tiers unread), as /sales does;
    `tiers_unread_reason` says why as /sales does: "no_key", "key_refused", "reading" (null: not said);
    `discounts_unread` counts those whose MRR is before discounts Stripe sent as ids only (not read yet), and
    `discounts_gone` those whose discount was removed before it could be read, as /sales notes them."""
    if s is None:
        return None
    by_code = {c.currency: c for c in s.currencies}
    code = store or (s.currencies[0].currency if s.currencies else "USD")
    main = by_code.get(code, MrrFigures(code, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    return {**_figures(main), "currency": main.currency, "active": s.active, "trialing": s.trialing,
            "since": _iso(s.since), "byCurrency": {c.currency: _figures(c) for c in s.currencies},
            "store_currency": store,
            "notConverted": None if store is None else {c.currency: c.mrr for c in s.currencies if c.currency != store},
            "tiers_unread": s.tiers_unread, "tiers_unread_reason": None if s.tiers_why is None else s.tiers_why.value,
            "discounts_unread": s.discounts_unread, "discounts_gone": s.discounts_gone}
