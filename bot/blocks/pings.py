"""Live pings: one message per sale, failed payment, refund or dispute, and one summary for a burst."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.blocks.elements import context, fields, header, local, message, section, when
from bot.blocks.message import MAX_SECTION_TEXT, Message, truncate
from bot.blocks.text import escape_mrkdwn, inline
from bot.money import format_money, format_totals

UNKNOWN: Final = "Unknown"
# A longer value says nothing more in a ping. Clipping before escaping (which can grow text 5×,
# "&" → "&amp;") also keeps every field well inside MAX_FIELD_TEXT, so the limit never cuts a label.
MAX_VALUE_CHARS: Final = 300
BURST_LISTED: Final = 10  # sales listed one per line in a burst summary; the rest become "…and N more"
# Each listed line gets an equal share of the section, leaving room for the "…and N more" line.
BURST_LINE_CHARS: Final = MAX_SECTION_TEXT // (BURST_LISTED + 1) - 1
BURST_PRODUCT_CHARS: Final = 40
LAST_MINUTE: Final = timedelta(seconds=60)
FAILURE_TITLE: Final = "❌ Payment Failed"  # the failed-payment ping's header, and its text's start
DISPUTE_TITLE: Final = "⚠️ Dispute opened"  # the dispute ping's header, and its text's start
# A subscription's renewal is expected money, not new business: its ping and its line in a summary say so (🔄, as
# the morning report's renewals line; 🔁 is MRR's).
RENEWAL: Final = "🔄"


@dataclass(frozen=True, slots=True)
class SaleView:
    """A completed sale as the sale ping shows it; `amount` in minor units of `currency`."""

    order_id: str
    product: str | None
    amount: int
    currency: str
    customer_email: str | None
    affiliate: str | None
    occurred_at: datetime
    late: bool = False  # delivered well after it happened (Stripe retry, outage catch-up)
    renewal: bool = False  # paid a subscription's renewal invoice: told as a renewal, not a new sale


@dataclass(frozen=True, slots=True)
class FailureView:
    """A failed payment attempt; amount and currency are absent when Stripe did not send them."""

    product: str | None
    amount: int | None
    currency: str | None
    customer_email: str | None
    reason: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class RefundView:
    """Money given back on an order; `full` when the whole charge was refunded."""

    order_id: str
    amount_refunded: int
    amount_total: int | None
    currency: str
    customer_email: str | None
    full: bool
    occurred_at: datetime
    product: str | None = None  # the order's, when the order is known


@dataclass(frozen=True, slots=True)
class DisputeView:
    """A chargeback the customer's bank opened against a charge."""

    dispute_id: str
    charge_id: str | None
    amount: int | None
    currency: str | None
    reason: str | None  # Stripe's code, e.g. "product_not_received"
    occurred_at: datetime
    product: str | None = None  # the disputed order's, when the order is known
    customer_email: str | None = None


@dataclass(frozen=True, slots=True)
class BurstView:
    """Many sales coalesced into one message; `sales` may hold only a sample of the `count`, of which `renewals`
    renewed a subscription (the hour's held renewals, with any sale waiting then)."""

    count: int
    totals: Mapping[str, int]  # minor units per ISO currency code
    first_at: datetime
    last_at: datetime
    sales: Sequence[SaleView]
    renewals: int = 0
    sale_totals: Mapping[str, int] = field(default_factory=dict)  # the new sales' (read only when both kinds are in)
    renewal_totals: Mapping[str, int] = field(default_factory=dict)  # the renewals'


def mask_email(email: str | None) -> str:
    """The first three characters of the address's local part and "***"; "unknown" when there is none."""
    if not email or not email.strip():
        return "unknown"
    # Only the local part, so an address shorter than three characters before "@" never shows the domain.
    return email.strip().partition("@")[0][:3] + "***"


def sale_message(sale: SaleView, *, tz: ZoneInfo) -> Message:
    """The sale ping: product, amount, order and masked customer, plus the affiliate when there is one; a
    subscription's renewal is titled as one ("🔄 Renewal"), never as a new sale."""
    amount = money_shown(sale.amount, sale.currency)
    title = f"{RENEWAL} Renewal" if sale.renewal else "💰 New Sale"
    blocks = [
        header(title if sale.renewal else f"{title}!"),
        fields(
            ("Product", shown(sale.product)),
            ("Amount", amount),
            ("Order ID", shown(sale.order_id)),
            ("Customer", customer_shown(sale.customer_email)),
        ),
    ]
    if sale.affiliate and sale.affiliate.strip():
        blocks.append(section(f"🎯 *Affiliate:* {shown(sale.affiliate)}"))
    late = " · delivered late" if sale.late else ""
    blocks.append(context(f"⏰ {when(sale.occurred_at, tz)}{late}"))
    product = f" — {shown(sale.product)}" if sale.product and sale.product.strip() else ""
    return message(f"{title}: {amount}{product}", blocks)


def sale_record(sale: SaleView) -> dict[str, Any]:
    """What the outbox keeps of a sale ping until it is posted (JSON-ready; amount and currency are columns):
    most sales of a burst are only summarised, so the full message is rendered by `sale_ping` when it is sent."""
    return {"order_id": sale.order_id, "product": sale.product, "customer": sale.customer_email,
            "affiliate": sale.affiliate, "occurred_at": sale.occurred_at.isoformat(), "late": sale.late}


def sale_ping(record: Mapping[str, Any], *, amount: int | None, currency: str | None, tz: ZoneInfo,
              renewal: bool = False) -> dict[str, Any]:
    """The sale ping's payload from what `sale_record` kept: the message `sale_message` makes of the sale
    (`renewal`: the order paid a subscription's renewal, as the outbox tells when the ping is sent)."""
    view = SaleView(order_id=record["order_id"], product=record.get("product"), amount=amount or 0,
                    currency=currency or "USD", customer_email=record.get("customer"),
                    affiliate=record.get("affiliate"), occurred_at=datetime.fromisoformat(record["occurred_at"]),
                    late=bool(record.get("late")), renewal=renewal)
    return sale_message(view, tz=tz).as_payload()


def failure_message(f: FailureView, *, tz: ZoneInfo) -> Message:
    """The failed-payment ping: product, amount, reason and masked customer, with a nudge to check Stripe."""
    amount = money_shown(f.amount, f.currency)
    reason = shown(f.reason)
    blocks = [
        header(FAILURE_TITLE),
        fields(
            ("Product", shown(f.product)),
            ("Amount", amount),
            ("Reason", reason),
            ("Customer", customer_shown(f.customer_email)),
        ),
        context("⚠️ Action may be needed - check Stripe dashboard", f"⏰ {when(f.occurred_at, tz)}"),
    ]
    return message(f"{FAILURE_TITLE}: {amount} — {reason}", blocks)


def refund_message(r: RefundView, *, tz: ZoneInfo) -> Message:
    """The refund ping: how much went back, out of what total, on which order, to whom."""
    title = "↩️ Refund" if r.full else "↩️ Partial refund"
    refunded = money_shown(r.amount_refunded, r.currency)
    total = money_shown(r.amount_total, r.currency)
    order = shown(r.order_id)
    blocks = [
        header(title),
        fields(
            ("Refunded", refunded),
            ("Of total", total),
            ("Product", shown(r.product)),
            ("Order ID", order),
            ("Customer", customer_shown(r.customer_email)),
        ),
        context(f"⏰ {when(r.occurred_at, tz)}"),
    ]
    of_total = "" if r.full else f" of {total}"
    return message(f"{title}: {refunded}{of_total} — order {order}", blocks)


def dispute_message(d: DisputeView, *, tz: ZoneInfo) -> Message:
    """The dispute ping: amount, reason and ids, and a reminder that an unanswered dispute is lost."""
    amount = money_shown(d.amount, d.currency)
    reason = shown(d.reason.replace("_", " ") if d.reason else None)
    blocks = [
        header(DISPUTE_TITLE),
        fields(
            ("Amount", amount),
            ("Reason", reason),
            ("Product", shown(d.product)),
            ("Customer", customer_shown(d.customer_email)),
            ("Dispute ID", shown(d.dispute_id)),
            ("Charge", shown(d.charge_id)),
        ),
        # Without evidence by the due date the bank decides for the customer:
        # https://docs.stripe.com/disputes/responding
        context(
            "⚠️ Respond in the Stripe dashboard before the evidence deadline, or the dispute is lost",
            f"⏰ {when(d.occurred_at, tz)}",
        ),
    ]
    return message(f"{DISPUTE_TITLE}: {amount} — {reason}", blocks)


def burst_span(first_at: datetime, last_at: datetime, tz: ZoneInfo) -> str:
    """How a summary says when its messages came: "in the last minute", or "since 14:02"."""
    return "in the last minute" if last_at - first_at <= LAST_MINUTE else f"since {local(first_at, tz):%H:%M}"


def burst_times(first_at: datetime, last_at: datetime, tz: ZoneInfo) -> str:
    """A summary's context line: the first and last message's times."""
    return f"⏰ {when(first_at, tz)} – {when(last_at, tz)}"


def burst_lines(lines: Sequence[str], count: int) -> list[str]:
    """A summary's list: the first BURST_LISTED lines, each cut to fit, and "…and N more" for the rest of `count`."""
    listed = [truncate(line, BURST_LINE_CHARS) for line in lines[:BURST_LISTED]]
    if (more := count - len(listed)) > 0:
        listed.append(f"…and {more:,} more")
    return listed


def burst_message(b: BurstView, *, tz: ZoneInfo) -> Message:
    """One summary for a flash sale or the hour's held renewals: totals per currency, the first sales listed, and the
    time span. New sales and renewals in one summary are counted and totalled apart, each renewal line marked 🔄:
    one message still (the hour's end sends one), and renewals are never read as new business."""
    span, sold = burst_span(b.first_at, b.last_at, tz), b.count - b.renewals
    mixed = 0 < b.renewals < b.count
    lines = burst_lines([_burst_line(sale, marked=mixed) for sale in b.sales[:BURST_LISTED]], b.count)
    if mixed:
        new, renewed = escape_mrkdwn(format_totals(b.sale_totals)), escape_mrkdwn(format_totals(b.renewal_totals))
        new_head, renewal_head = f"🔥 {_counted(sold, 'new sale')}", f"{RENEWAL} {_counted(b.renewals, 'renewal')}"
        blocks = [header(f"{new_head} · {renewal_head}"), section(f"*New sales:* {new}\n*Renewals:* {renewed}")]
        text = f"{new_head} {span} — {new} · {renewal_head} — {renewed}"
    else:
        totals = escape_mrkdwn(format_totals(b.totals))
        headline = f"{RENEWAL} {_counted(b.count, 'renewal')}" if b.renewals else f"🔥 {b.count} new sales"
        blocks = [header(headline), section(f"*Total:* {totals}")]
        text = f"{headline} {span} — {totals}"
    if lines:
        blocks.append(section("\n".join(lines)))
    blocks.append(context(burst_times(b.first_at, b.last_at, tz)))
    return message(text, blocks)


def _counted(count: int, noun: str) -> str:
    """"1 renewal", "3 renewals"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _burst_line(sale: SaleView, *, marked: bool = False) -> str:
    """One compact line of a burst: amount · product · masked customer, and 🎯 the affiliate when there is one (the
    order id is left out: ten of them would crowd a phone's screen, and the sale is on the dashboard); `marked`, a
    renewal's line starts 🔄 instead of •."""
    product = shown(sale.product, limit=BURST_PRODUCT_CHARS)
    bullet = RENEWAL if marked and sale.renewal else "•"
    line = f"{bullet} {money_shown(sale.amount, sale.currency)} · {product} · {customer_shown(sale.customer_email)}"
    if sale.affiliate and sale.affiliate.strip():
        line += f" · 🎯 {shown(sale.affiliate, limit=BURST_PRODUCT_CHARS)}"
    return line


def shown(text: str | None, *, limit: int = MAX_VALUE_CHARS) -> str:
    """User- or Stripe-controlled text, clipped and escaped for mrkdwn; "Unknown" when blank."""
    if text is None or not text.strip():
        return UNKNOWN
    return inline(text, limit)


def money_shown(amount: int | None, currency: str | None) -> str:
    """A formatted amount safe for mrkdwn; "Unknown" when Stripe sent no amount or no currency."""
    if amount is None or not currency:
        return UNKNOWN
    return shown(format_money(amount, currency))


def customer_shown(email: str | None) -> str:
    """The masked customer, escaped: even three characters of an address can be `<!c`."""
    return escape_mrkdwn(mask_email(email))
