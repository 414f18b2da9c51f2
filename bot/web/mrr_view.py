"""The dashboard's MRR card as display-ready text (None hides it: a store without subscriptions)."""

from __future__ import annotations

from bot.blocks.mrr import mrr_change
from bot.blocks.subscriptions import signed_money
from bot.money import format_money
from queries.mrr import MrrSummary


def mrr_card(s: MrrSummary | None) -> dict[str, str] | None:
    """MRR per currency ("$58.00 + €10.00"), its week change, subscribers and the last 30 days' movements."""
    if s is None or not s.currencies:
        return None
    main = s.currencies[0]
    moves = " · ".join(f"new {signed_money(c.new + c.reactivation, c.currency)}"
                       f" · churned {signed_money(-c.churned, c.currency)}" for c in s.currencies)
    return {"mrr": " + ".join(format_money(c.mrr, c.currency) for c in s.currencies),
            "detail": f"{mrr_change(main.mrr, main.mrr_week_ago)} vs 7 days ago · {s.active:,} subscribers"
                      f" · 30 days: {moves}"}
