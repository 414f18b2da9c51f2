"""Today's pace as one line: "📈 On pace for $4,210.00 — a usual Saturday is $3,900.00 (▲ 8%)"."""

from __future__ import annotations

from bot.blocks.common import change
from bot.blocks.elements import section
from bot.blocks.message import Block
from bot.blocks.text import escape_mrkdwn
from bot.money import format_money, minor_unit_exponent
from bot.rhythm.pace import Pace


def _whole(amount: int, currency: str) -> int:
    """A projection rounded to whole major units: its cents would be false precision."""
    unit = 10 ** minor_unit_exponent(currency)
    return round(amount / unit) * unit


def pace_text(p: Pace) -> str:
    """The line itself; in orders when the store's currency had no revenue in the history."""
    if p.usual_revenue <= 0:
        return (f"📈 On pace for {p.projected_orders:,} orders — a usual {p.weekday} has {p.usual_orders:,}"
                f" ({escape_mrkdwn(change(p.projected_orders, p.usual_orders))})")
    projected = escape_mrkdwn(format_money(_whole(p.projected_revenue, p.currency), p.currency))
    usual = escape_mrkdwn(format_money(_whole(p.usual_revenue, p.currency), p.currency))
    scope = f" ({p.currency} orders)" if p.one_currency_of_several else ""
    return (f"📈 On pace for *{projected}*{scope} — a usual {p.weekday} is {usual}"
            f" ({escape_mrkdwn(change(p.projected_revenue, p.usual_revenue))})")


def pace_block(p: Pace) -> Block:
    """The pace line as a section, with the orders it rests on in small print under it."""
    return section(f"{pace_text(p)}\n_{p.orders:,} orders so far · {p.projected_orders:,} projected by midnight"
                   f" · usually {p.usual_orders:,}_")
