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


def subscriptions_json(s: MrrSummary | None) -> dict[str, Any] | None:
    """MRR now and a week ago, the movements since `since` (30 days), active subscribers; None if not looked up.

    The top-level money fields are in `currency`, the currency with the most MRR (USD when there is none); every
    currency's own figures are under `byCurrency`. A trialing subscription is in `trialing`, not in MRR."""
    if s is None:
        return None
    main = s.currencies[0] if s.currencies else MrrFigures("USD", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return {**_figures(main), "currency": main.currency, "active": s.active, "trialing": s.trialing,
            "since": _iso(s.since), "byCurrency": {c.currency: _figures(c) for c in s.currencies}}
