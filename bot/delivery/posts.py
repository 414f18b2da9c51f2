"""What the delivery worker sends to a channel in one pass, rendered from the outbox: one message, the newest of
several updates to it, or one summary of a burst of sales (or of failed payments, refunds or disputes)."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.blocks.ping_burst import WORDINGS, PingBurstView, ping_burst_message
from bot.blocks.pings import BurstView, SaleView, burst_message, sale_ping
from queries import bursts
from queries import outbox as q

# Kinds whose waiting posts go out as one message (queries/bursts.py): sales, and pings said in their own text.
BURSTS = frozenset({"sale", *WORDINGS})


@dataclass(frozen=True, slots=True)
class Post:
    """What one pass sends to a channel: one message, the newest of several updates, or a burst summary."""

    ref: int  # the outbox id in the message's metadata and in its attempt record
    payload: dict[str, object]
    head: q.OutboxMessage | None = None  # None for a burst
    ids: tuple[int, ...] = ()  # the messages it settles; a burst's are listed in its attempt record
    count: int = 1  # messages covered
    failures: int = 0  # a burst's earlier failed attempts (a message's are its `head.attempts`)
    slack_channel: str | None = None  # a burst's Slack channel, recorded with its claim (None: the sender's choice)
    resent: bool = False  # an attempt of it was recorded before this pass: a 429 now leaves that record as it was

    @property
    def burst(self) -> bool:
        return self.head is None

    @property
    def failed_before(self) -> int:
        """Calls for it that failed before this pass."""
        return self.head.attempts if self.head is not None else self.failures


def _sale_view(sale: bursts.ListedSale) -> SaleView:
    meta = sale.sale
    return SaleView(order_id=str(meta.get("order_id", sale.id)), product=meta.get("product"),
                    amount=sale.amount or 0, currency=sale.currency or "USD",
                    customer_email=meta.get("customer"), affiliate=meta.get("affiliate"), occurred_at=sale.created_at,
                    renewal=sale.renewal)


def message_payload(m: q.OutboxMessage, *, tz: ZoneInfo) -> dict[str, object]:
    """What Slack gets for an outbox message. A sale ping is rendered only now, from the sale the intake kept:
    most sales of a burst are never posted alone (a row queued rendered, by an older intake, goes as it is)."""
    if m.kind == "sale" and "text" not in m.payload:
        return sale_ping(m.payload["sale"], amount=m.amount, currency=m.currency, tz=tz, renewal=m.renewal)
    return dict(m.payload)


def burst_post(summary: bursts.BurstSummary, *, tz: ZoneInfo, failures: int = 0, slack_channel: str | None = None,
               resent: bool = False) -> Post:
    """The one message announcing every sale a burst claim covers (totals kept per currency), or every failed
    payment, refund or dispute."""
    if summary.kind != "sale":
        payload = ping_burst_message(PingBurstView(
            kind=summary.kind, count=summary.count, first_at=summary.first_at, last_at=summary.last_at,
            lines=[s.text for s in summary.listed if s.text], titles=summary.titles), tz=tz).as_payload()
    else:
        payload = burst_message(BurstView(count=summary.count, totals=summary.totals, first_at=summary.first_at,
                                          last_at=summary.last_at, sales=[_sale_view(s) for s in summary.listed],
                                          renewals=summary.renewals, sale_totals=summary.sale_totals,
                                          renewal_totals=summary.renewal_totals), tz=tz).as_payload()
    return Post(ref=summary.ref, payload=payload, count=summary.count, failures=failures,
                slack_channel=slack_channel, resent=resent)
