"""Apply one Stripe event to the store's data and queue its Slack message, in one transaction."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bot.blocks.message import Message
from bot.blocks.pings import (
    DisputeView,
    FailureView,
    RefundView,
    SaleView,
    dispute_message,
    failure_message,
    refund_message,
    sale_message,
)
from bot.intake.events import Kind, PaymentEvent
from queries import intake as q
from queries import outbox

log = logging.getLogger(__name__)

# A sale whose event is this much older than its arrival is pinged with a "late" note.
LATE_AFTER = dt.timedelta(minutes=10)

# When two events about one payment carry the same second, the further-along state wins.
_STATUS_RANK = {"pending": 0, "failed": 1, "completed": 2, "refunded": 3}

# Processing errors that mean "this payload is odd", not "the database is gone": the event is kept
# with status 'error' (and answered 2xx, since it is stored) instead of being retried by Stripe forever.
PAYLOAD_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, TypeError,
                   KeyError, AttributeError)


class Outcome(StrEnum):
    """What the intake did with an event."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """The outcome, and how many Slack messages were queued."""

    outcome: Outcome
    queued: int = 0


def status_moves(current: str, current_at: dt.datetime, new: str, new_at: dt.datetime) -> bool:
    """Whether an event's status replaces the stored one: newer wins; a tie goes to the further state."""
    if new_at != current_at:
        return new_at > current_at
    return _STATUS_RANK.get(new, 0) >= _STATUS_RANK.get(current, 0)


async def ingest(conn: asyncpg.Connection, *, source: str, event_id: str, event_type: str, payload: Any,
                 event: PaymentEvent | None, tz: ZoneInfo, now: dt.datetime, via: str = "webhook") -> IntakeResult:
    """Store the raw event once and, when it is new, apply it; all or nothing."""
    async with conn.transaction():
        status = "processed" if event is not None else "ignored"
        log_id = await q.log_webhook(conn, source=source, event_id=event_id, event_type=event_type,
                                     status=status, livemode=bool(event and event.livemode),
                                     payload=payload,
                                     event_created_at=event.occurred_at if event else None, via=via)
        if log_id is None:
            return IntakeResult(Outcome.DUPLICATE)
        if event is None:
            return IntakeResult(Outcome.IGNORED)
        try:
            async with conn.transaction():  # a savepoint: a failure keeps the log row
                queued = await _apply(conn, event, tz=tz, now=now)
        except PAYLOAD_ERRORS as exc:
            log.warning("stripe event %s (%s) could not be applied: %s", event_id, event_type, exc)
            await q.mark_webhook_error(conn, log_id=log_id, error=f"{type(exc).__name__}: {exc}")
            return IntakeResult(Outcome.ERROR)
    return IntakeResult(Outcome.PROCESSED, queued)


async def _apply(conn: asyncpg.Connection, e: PaymentEvent, *, tz: ZoneInfo, now: dt.datetime) -> int:
    match e.kind:
        case Kind.SALE:
            return await _sale(conn, e, tz=tz, now=now)
        case Kind.PENDING:
            await _upsert_order(conn, e, status="pending")
            await _checkout(conn, e, status="pending")
            return 0
        case Kind.FAILURE:
            return await _failure(conn, e, tz=tz)
        case Kind.REFUND:
            return await _refund(conn, e, tz=tz)
        case Kind.DISPUTE:
            return await _dispute(conn, e, tz=tz)
        case Kind.CHECKOUT_EXPIRED:
            await _checkout(conn, e, status="expired")
            return 0
    return 0


def _fields(e: PaymentEvent) -> q.OrderFields:
    return q.OrderFields(
        amount_total=e.amount, currency=e.currency, customer_email=e.customer_email,
        customer_name=e.customer_name, product_name=e.product, affiliate_id=e.affiliate,
        checkout_session_id=e.checkout_session_id, payment_intent_id=e.payment_intent_id,
        invoice_id=e.invoice_id, charge_id=e.charge_id, livemode=e.livemode, metadata=e.metadata)


async def _upsert_order(conn: asyncpg.Connection, e: PaymentEvent, *,
                        status: str) -> tuple[str, bool, q.OrderSummary]:
    """Create or merge the order for this payment; return (order id, entered `status` now, merged fields)."""
    await q.lock_refs(conn, e.refs)
    existing = await q.find_order(conn, e.refs)
    reason = e.failure_reason if status == "failed" else None
    if existing is None:
        await q.insert_order(conn, order_id=e.order_ref, status=status, fields=_fields(e),
                             failure_reason=reason, at=e.occurred_at)
        await q.add_refs(conn, order_id=e.order_ref, refs=e.refs)
        summary = q.OrderSummary(e.customer_email, e.product, e.affiliate, e.amount, e.currency)
        return e.order_ref, True, summary
    moves = status_moves(existing.payment_status, existing.status_at, status, e.occurred_at)
    entered = moves and existing.payment_status != status
    summary = await q.update_order(conn, order_id=existing.id, move_status=moves, status=status,
                                   at=e.occurred_at, failure_reason=reason, fields=_fields(e))
    await q.add_refs(conn, order_id=existing.id, refs=e.refs)
    return existing.id, entered, summary


async def _checkout(conn: asyncpg.Connection, e: PaymentEvent, *, status: str) -> None:
    if e.checkout_session_id is None:
        return
    await q.upsert_checkout(conn, session_id=e.checkout_session_id, status=status, amount_total=e.amount,
                            currency=e.currency, customer_email=e.customer_email, metadata=e.metadata,
                            created_at=e.session_created_at or e.occurred_at, at=e.occurred_at)


async def _enqueue(conn: asyncpg.Connection, *, key: str, channel: str, kind: str, message: Message,
                   amount: int | None = None, currency: str | None = None,
                   extra: dict[str, Any] | None = None) -> int:
    payload = message.as_payload() | (extra or {})
    msg_id = await outbox.enqueue(conn, dedupe_key=key, channel=channel, kind=kind,
                                  payload=payload, amount=amount, currency=currency)
    return 0 if msg_id is None else 1


async def _sale(conn: asyncpg.Connection, e: PaymentEvent, *, tz: ZoneInfo, now: dt.datetime) -> int:
    order_id, entered, order = await _upsert_order(conn, e, status="completed")
    await _checkout(conn, e, status="completed")
    if not entered or order.amount_total is None or order.currency is None:
        return 0
    view = SaleView(order_id=order_id, product=order.product_name, amount=order.amount_total,
                    currency=order.currency, customer_email=order.customer_email,
                    affiliate=order.affiliate_id, occurred_at=e.occurred_at,
                    late=now - e.occurred_at > LATE_AFTER)
    # Keyed by order: however many event types report this payment, it pings once.
    return await _enqueue(conn, key=f"sale:{order_id}", channel="sales", kind="sale",
                          message=sale_message(view, tz=tz), amount=order.amount_total,
                          currency=order.currency,
                          # What a coalesced burst summary needs to list this sale again.
                          extra={"sale": {"order_id": order_id, "product": order.product_name,
                                          "customer": order.customer_email}})


async def _failure(conn: asyncpg.Connection, e: PaymentEvent, *, tz: ZoneInfo) -> int:
    order_id, _, order = await _upsert_order(conn, e, status="failed")
    if e.checkout_session_id is not None:
        await _checkout(conn, e, status="failed")
    await q.insert_failure(conn, event_id=e.event_id, order_id=order_id, amount=e.amount,
                           currency=e.currency, customer_email=e.customer_email,
                           reason=e.failure_reason, at=e.occurred_at)
    view = FailureView(product=order.product_name, amount=e.amount, currency=e.currency,
                       customer_email=e.customer_email, reason=e.failure_reason, occurred_at=e.occurred_at)
    return await _enqueue(conn, key=f"failure:{e.event_id}", channel="alerts", kind="failure",
                          message=failure_message(view, tz=tz))


async def _refund(conn: asyncpg.Connection, e: PaymentEvent, *, tz: ZoneInfo) -> int:
    refunded = e.amount_refunded or 0
    if refunded <= 0:
        return 0
    await q.lock_refs(conn, e.refs)
    existing = await q.find_order(conn, e.refs)
    total, email = e.amount, e.customer_email
    order_id = e.order_ref
    if existing is not None:
        order_id = existing.id
        stored_total, stored_email = await q.apply_refund(conn, order_id=existing.id,
                                                          amount_refunded=refunded, at=e.occurred_at)
        total, email = stored_total or total, stored_email or email
    view = RefundView(order_id=order_id, amount_refunded=refunded, amount_total=total,
                      currency=e.currency or "USD", customer_email=email,
                      full=total is not None and refunded >= total, occurred_at=e.occurred_at)
    # The cumulative amount makes each further partial refund a new message, and a redelivery none.
    return await _enqueue(conn, key=f"refund:{e.charge_id or order_id}:{refunded}", channel="sales",
                          kind="refund", message=refund_message(view, tz=tz))


async def _dispute(conn: asyncpg.Connection, e: PaymentEvent, *, tz: ZoneInfo) -> int:
    dispute_id = e.dispute_id or e.event_id
    existing = await q.find_order(conn, e.refs)
    await q.insert_dispute(conn, dispute_id=dispute_id, order_id=existing.id if existing else None,
                           charge_id=e.charge_id, amount=e.amount, currency=e.currency,
                           reason=e.dispute_reason, status=e.dispute_status, at=e.occurred_at)
    view = DisputeView(dispute_id=dispute_id, charge_id=e.charge_id, amount=e.amount, currency=e.currency,
                       reason=e.dispute_reason, occurred_at=e.occurred_at)
    return await _enqueue(conn, key=f"dispute:{dispute_id}", channel="alerts", kind="dispute",
                          message=dispute_message(view, tz=tz))
