"""The dashboard's MRR card as display-ready text (None hides it: a store without subscriptions)."""

from __future__ import annotations

from bot.blocks.common import counted
from bot.blocks.mrr import movements, mrr_change, store_first
from bot.money import format_money
from queries.mrr import MrrSummary


def mrr_card(s: MrrSummary | None, *, store: str | None = None) -> dict[str, str] | None:
    """MRR per currency ("$58.00 + €10.00"; the store currency first, the others "not converted"), its week
    change, subscribers and the last 30 days' movements ("USD: new +$19.00 · none churned; EUR: …"), each sign
    held to its amount (bot/blocks/mrr.py)."""
    if s is None or not s.currencies:
        return None
    currencies = store_first(s.currencies, store)
    main = currencies[0]
    # Each currency's moves named by it: two "none churned" in a row say nothing of which currency lost none.
    moves = movements(main) if len(currencies) == 1 else "; ".join(f"{c.currency}: {movements(c)}" for c in currencies)
    others = [c for c in currencies if store is not None and c.currency != store]
    if store is not None and others:
        kept = [c for c in currencies if c.currency == store]
        mrr = (format_money(kept[0].mrr, store) + " · " if kept else "") \
            + " + ".join(format_money(c.mrr, c.currency) for c in others) + " not converted"
    else:
        mrr = " + ".join(format_money(c.mrr, c.currency) for c in currencies)
    # Several currencies and none the store's: the week's change is the first one's, and says so.
    whose = f" ({main.currency})" if store is None and len(currencies) > 1 else ""
    return {"mrr": mrr,
            "detail": f"{mrr_change(main.mrr, main.mrr_week_ago)}{whose} vs 7 days ago"
                      f" · {counted(s.active, 'subscriber')} · 30 days: {moves}"}

