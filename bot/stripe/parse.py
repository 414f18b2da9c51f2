"""Reduce a decoded Stripe webhook event to a PaymentEvent, whatever shape the JSON takes and API version sent it.

One reader per Stripe object type (checkout, payments, invoices); the event type picks the reader and the kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from bot.intake.events import MalformedEvent, PaymentEvent
from bot.stripe.build import Envelope
from bot.stripe.checkout import checkout_session
from bot.stripe.fields import is_mapping, mapping, string, timestamp
from bot.stripe.invoices import invoice, invoice_payment
from bot.stripe.payments import (
    charge_captured,
    charge_failed,
    charge_refunded,
    charge_succeeded,
    dispute,
    dispute_settled,
    payment_intent,
)
from bot.stripe.refunds import refund_void
from bot.stripe.subscriptions import subscription


def parse_event(raw: Mapping[str, Any]) -> PaymentEvent | None:
    """The PaymentEvent in a Stripe webhook body, or None when salespulse has nothing to record."""
    if not is_mapping(raw):
        raise MalformedEvent(f"a Stripe event is a JSON object, not {type(raw).__name__}")
    event_id, event_type = raw.get("id"), raw.get("type")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEvent("the event has no string `id`")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("the event has no string `type`")
    data = mapping(raw, "data")
    obj = data.get("object")
    if not is_mapping(obj):
        raise MalformedEvent("the event has no object at `data.object`")
    handler = _HANDLERS.get(event_type)
    if handler is None:
        return None
    occurred_at = timestamp(raw.get("created")) or timestamp(obj.get("created"))
    if occurred_at is None:
        raise MalformedEvent("neither the event nor its object has a valid `created` time")
    livemode = raw.get("livemode")
    env = Envelope(event_id, event_type, occurred_at, livemode is True, string(raw, "api_version"),
                   mapping(data, "previous_attributes"))
    return handler(env, obj)


_Handler = Callable[[Envelope, Mapping[str, Any]], PaymentEvent | None]

# invoice.payment_succeeded is left out on purpose: it reports the same payment as invoice.paid, and counting
# both would double the sale. charge.succeeded (of a PaymentIntent) and invoice_payment.paid are LINKs (ids and
# customer, no sale): from 2025-03-31.basil on they are what ties a PaymentIntent to its Charge and to the invoice
# it paid.
_HANDLERS: Final[Mapping[str, _Handler]] = {
    "checkout.session.completed": checkout_session,
    "checkout.session.async_payment_succeeded": checkout_session,
    "checkout.session.async_payment_failed": checkout_session,
    "checkout.session.expired": checkout_session,
    "payment_intent.succeeded": payment_intent,
    "payment_intent.payment_failed": payment_intent,
    "charge.succeeded": charge_succeeded,
    # A legacy Charge (no PaymentIntent: `POST /v1/charges`) has no payment_intent.* events: these tell its sale and
    # its decline. With a PaymentIntent, charge.failed and charge.captured are None (its own events count them).
    "charge.captured": charge_captured,
    "charge.failed": charge_failed,
    "charge.refunded": charge_refunded,
    # A refund failed or canceled: its money came back (charge.refund.updated in every version; refund.failed and
    # refund.updated for charges' refunds from 2024-10-28.acacia on). Any other refund update is ignored.
    "charge.refund.updated": refund_void,
    "refund.failed": refund_void,
    "refund.updated": refund_void,
    "charge.dispute.created": dispute,
    # A won dispute gives the money (and in most countries the dispute fee) back: net is read again.
    "charge.dispute.closed": dispute_settled,
    "charge.dispute.funds_reinstated": dispute_settled,
    "invoice.paid": invoice,
    "invoice.payment_failed": invoice,
    "invoice_payment.paid": invoice_payment,
    "customer.subscription.created": subscription,
    "customer.subscription.updated": subscription,
    "customer.subscription.deleted": subscription,
}

# The event types to enable on the Stripe webhook endpoint, and the ones the Events API poll feeds (bot/stripe/sync.py).
HANDLED_TYPES: Final = frozenset(_HANDLERS)
