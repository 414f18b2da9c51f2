"""Figure wording shared by /sales, the App Home, the reports and the dashboard: gross, net, and the per-currency
breakdown beside them; refunds made and those that failed; unique customers. Pure: figures in, strings out."""

from __future__ import annotations

from collections.abc import Sequence

from bot.blocks.common import count_text, counted
from bot.currency import StoreTotals, average
from bot.money import format_money, format_totals
from queries.sales import CurrencyTotal

# Orders Stripe settled in another currency than the store's: given up on, in no total (bot/currency.py `aside`).
SETTLED_ELSEWHERE = "settled in another currency, not counted"


def gross_text(st: StoreTotals) -> str:
    """"$197.31", or "$167.31 + ¥2,980 not converted yet" while an order in another currency awaits Stripe, and
    "+ €45.00 settled in another currency, not counted" for orders Stripe settled in another currency than the
    store's (the fees job gave them up: they will never convert)."""
    text = format_money(st.gross, st.currency)
    if st.pending:
        rest = format_totals({t.currency: t.revenue for t in st.pending})
        text += f" + {rest} not converted yet" if st.with_fees else f" + {rest} (no STRIPE_API_KEY to convert)"
    if st.aside:
        text += f" + {format_totals({t.currency: t.revenue for t in st.aside})} {SETTLED_ELSEWHERE}"
    return text


def net_text(st: StoreTotals) -> str | None:
    """"$180.03 (fees $6.92 · refunds and disputes of these orders $10.82)", saying when some fees are still to
    come; None without a key. What it takes off is what Stripe withdrew for the period's own orders, whenever:
    refunds and lost disputes alike (one settled figure). "Refunds made" beside it counts refunds made in the
    period, of any order: the label keeps the two from reading as a contradiction."""
    if not st.with_fees:
        return None
    parts = [f"fees {format_money(st.fees, st.currency)}"]
    if st.refunds:
        parts.append(f"refunds and disputes of these orders {format_money(st.refunds, st.currency)}")
    waiting = st.unsettled + sum(t.orders for t in st.pending)
    if waiting:
        parts.append(f"fees of {counted(waiting)} still to come")
    if st.fees_unknown:  # charged in the store currency, settled in another: the fees job gave them up
        parts.append(f"fees of {counted(st.fees_unknown)} settled in another currency unknown")
    return f"{format_money(st.net, st.currency)} ({' · '.join(parts)})"


def breakdown_text(totals: Sequence[CurrencyTotal]) -> str:
    """The per-currency revenue, gross as charged: "By currency: €45.00 + $30.00"."""
    return "By currency: " + format_totals({t.currency: t.revenue for t in totals})


def average_text(st: StoreTotals) -> str | None:
    """Gross ÷ the orders it counts: "$49.32", or "$30.00 (3 not converted yet)" while some are not in the store
    currency yet (one euro order waiting must not blank the average of a week's hundreds)."""
    waiting = sum(t.orders for t in st.pending)
    if st.converted <= 0:
        return None
    text = format_money(average(st.gross, st.converted), st.currency)
    return f"{text} ({waiting:,} not converted yet)" if waiting else text


def refunds_text(totals: Sequence[CurrencyTotal], *, noun: bool = False) -> str:
    """Refunds made in a period, then the money back from refunds that failed or were canceled in it, never netted
    (queries.sales.refunds gives these as rows of their own, negative): "2 · $25.00 + €5.00" ("2 refunds · …" with
    `noun`), "1 · $10.00 · $30.00 back (1 failed or canceled)", "none · $30.00 back (…)", or "none"."""
    made = [t for t in totals if t.orders > 0]
    voided = [t for t in totals if t.orders < 0]
    if made:
        count = sum(t.orders for t in made)
        money = " + ".join(format_money(t.revenue, t.currency) for t in made)
        text = f"{counted(count, 'refund') if noun else f'{count:,}'} · {money}"
    else:
        text = "no refunds" if noun and not voided else "none"
    if voided:
        back = " + ".join(format_money(-t.revenue, t.currency) for t in voided)
        text += f" · {back} back ({-sum(t.orders for t in voided):,} failed or canceled)"
    return text


def customers_text(count: int, error: float | None = None, *, without_email: int = 0) -> str:
    """Unique customers (distinct emails) and the orders no count can include: "2 (+1 order without an email)",
    "≈15,200 (±3.0%; +40 orders without an email)", or "unknown (no email on the 3 orders)" when none had one."""
    if not without_email:
        return count_text(count, error)
    if count == 0:
        return "unknown (no email on the order)" if without_email == 1 else \
            f"unknown (no email on the {without_email:,} orders)"
    rest = f"+{counted(without_email)} without an email"
    return f"{count:,} ({rest})" if error is None else f"≈{count:,} (±{error:.1%}; {rest})"
