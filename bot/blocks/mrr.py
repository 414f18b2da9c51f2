"""The MRR part of /sales, the App Home and the daily report: MRR against a week ago, its movements, subscribers.

Pure: takes the MrrSummary row of queries/mrr.py. Nothing is shown for a store without subscriptions. Each currency
keeps its own MRR (never summed across currencies): with a store currency, MRR in it is that of the subscriptions
billed in it, shown first; the others follow in their own currencies, said not to be converted (no rate is guessed:
a subscription's price is not a settled amount)."""

from __future__ import annotations

from typing import Final

from bot.blocks.common import change
from bot.blocks.elements import context, section
from bot.blocks.message import Block
from bot.blocks.text import escape_mrkdwn
from bot.money import format_money
from queries.mrr import MrrFigures, MrrSummary

MAX_CURRENCIES: Final = 5  # a store billing in more shows the biggest and "…and N more"
# U+2060 WORD JOINER between a sign and its amount: "−" and "$" may otherwise break apart on a phone's narrow line,
# leaving "downgrades −" at a line's end and the amount, read as a gain, on the next. Invisible in Slack and browsers.
WORD_JOINER: Final = "\u2060"
# Why tiered subscriptions are left out of MRR, by MrrSummary.tiers_why (queries.mrr.TiersUnread, a str): from what
# the process knows of STRIPE_API_KEY, never a promise no job will keep, nor "no key" while one is set.
TIERS_WHY: Final[dict[str | None, str]] = {
    "no_key": ": set STRIPE_API_KEY to read their tiers",
    "key_refused": ": Stripe refuses the key (see /health)",
    "reading": " yet: their tiers are being read from Stripe",
    None: ": their tiers are not read",
}


def mrr_change(now: int, before: int) -> str:
    """MRR against a week ago, written as every other change is (bot/blocks/common.change): "▲ 4%", "▼ <1%",
    "= 0%", "new"; never "▲ 4.2 %" beside the orders' "▲ 52%". Raw: mrkdwn callers escape its "<"."""
    return change(now, before) if now or before else "= 0%"


def _money(amount: int, currency: str) -> str:
    return escape_mrkdwn(format_money(amount, currency))


def store_first(currencies: tuple[MrrFigures, ...], store: str | None) -> tuple[MrrFigures, ...]:
    """The store currency's MRR first, then the others as they were (biggest first)."""
    return currencies if store is None else tuple(sorted(currencies, key=lambda c: c.currency != store))


def apart_note(currencies: tuple[MrrFigures, ...], store: str | None) -> str | None:
    """Said when some MRR is billed in other currencies than the store's: they are not converted."""
    if store is None or all(c.currency == store for c in currencies):
        return None
    return f"MRR billed in other currencies is listed apart, never converted to {store} (no rate is guessed)"


def _lines(c: MrrFigures) -> str:
    headline = (f"*MRR {_money(c.mrr, c.currency)}* {escape_mrkdwn(mrr_change(c.mrr, c.mrr_week_ago))} vs 7 days ago"
                f" · {c.active:,} subscriber{'s' if c.active != 1 else ''}")
    return f"{headline}\n30 days: {movements(c)}"


def signed(sign: str, amount: int, currency: str) -> str:
    """"+$19.00", "−€4.00": the sign held to its amount (WORD_JOINER), escaped for mrkdwn."""
    return f"{sign}{WORD_JOINER}{_money(amount, currency)}"


def movements(c: MrrFigures) -> str:
    """One currency's last 30 days: "new +$19.00 · upgrades +$39.00 · none churned" (/sales and the dashboard),
    each sign joined to its amount."""
    moves = [f"new {signed('+', c.new + c.reactivation, c.currency)}"]
    if c.expansion:
        moves.append(f"upgrades {signed('+', c.expansion, c.currency)}")
    if c.contraction:
        moves.append(f"downgrades {signed('−', c.contraction, c.currency)}")
    # Nothing lost reads as "none churned", not as a negative zero ("churned −€0.00 (0)").
    moves.append(f"churned {signed('−', c.churned, c.currency)} ({c.churned_count:,})" if c.churned_count
                 else "none churned")
    return " · ".join(moves)


def mrr_blocks(summary: MrrSummary | None, *, store: str | None = None) -> list[Block]:
    """One section for the store's subscriptions; none when it has none or the figures did not arrive."""
    if summary is None or not summary.currencies:
        return []
    currencies = store_first(summary.currencies, store)
    shown = currencies[:MAX_CURRENCIES]
    text = "🔁 " + "\n".join(_lines(c) for c in shown)
    if (more := len(currencies) - len(shown)) > 0:
        text += f"\n…and {more} more currencies"
    if summary.trialing:
        text += f"\n🧪 {summary.trialing:,} in trial (not in MRR)"
    if (note := apart_note(currencies, store)) is not None:
        text += f"\n_{note}_"
    return [section(text), *_discounts_note(summary)]


def _discounts_note(s: MrrSummary) -> list[Block]:
    """A context line when some MRR is before discounts that Stripe sent as ids only, or leaves out tiered prices."""
    notes = []
    if s.discounts_unread:
        notes.append(f"MRR is before discounts for {s.discounts_unread:,} subscription"
                     f"{'s' if s.discounts_unread != 1 else ''} whose discounts Stripe sent as ids only"
                     " (read with STRIPE_API_KEY)")
    if s.discounts_gone:
        notes.append(f"{s.discounts_gone:,} more had a discount removed before it could be read")
    if s.tiers_unread:
        notes.append(f"{s.tiers_unread:,} subscription{'s' if s.tiers_unread != 1 else ''} on tiered prices"
                     f" {'are' if s.tiers_unread != 1 else 'is'} not counted in MRR{TIERS_WHY[s.tiers_why]}")
    return [context("ℹ️ " + "; ".join(notes))] if notes else []


def mrr_report_line(summary: MrrSummary | None, *, store: str | None = None) -> str | None:
    """The daily report's line: "MRR $12,340 ▲ 2% this week" (per currency, joined, the store's first, the
    others "not converted"); None without subscriptions."""
    if summary is None or not summary.currencies:
        return None
    return " · ".join(f"MRR {_money(c.mrr, c.currency)} {escape_mrkdwn(mrr_change(c.mrr, c.mrr_week_ago))} this week"
                      + (" (not converted)" if store is not None and c.currency != store else "")
                      for c in store_first(summary.currencies, store)[:MAX_CURRENCIES])
