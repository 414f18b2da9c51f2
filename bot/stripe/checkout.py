"""Checkout Session events: completed (paid, pending, free), async payment succeeded or failed, expired."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from bot.intake.events import Kind, PaymentEvent
from bot.stripe.build import Envelope, Ids, charge_id, new_event, payment_error
from bot.stripe.fields import coalesce, integer, mapping, string, stripe_id, timestamp

_SESSION_KINDS: Final = {
    "checkout.session.async_payment_succeeded": Kind.SALE,
    "checkout.session.async_payment_failed": Kind.FAILURE,
    "checkout.session.expired": Kind.CHECKOUT_EXPIRED,
}
# async_payment_failed's reason when its PaymentIntent is not expanded (it never is in a webhook): the bank's reason
# comes on payment_intent.payment_failed, which replaces it (bot/intake/failures.py).
ASYNC_FAILED: Final = "Asynchronous payment failed"


def _session_kind(event_type: str, obj: Mapping[str, Any], amount: int | None) -> Kind | None:
    """What a Checkout Session event means, or None when no money is involved."""
    if event_type in _SESSION_KINDS:
        return _SESSION_KINDS[event_type]
    # checkout.session.completed. Setup mode only saves a card (amount_total null): nothing to record.
    if string(obj, "mode") == "setup" or amount is None:
        return None
    status = string(obj, "payment_status")
    # A zero total or no_payment_required (a free trial, a 100% coupon) takes no money: not a sale.
    if amount <= 0 or status == "no_payment_required":
        return Kind.FREE
    if status == "unpaid":
        # Delayed methods (SEPA, ACH, Boleto) complete unpaid; async_payment_succeeded/failed follows.
        # https://docs.stripe.com/checkout/fulfillment
        return Kind.PENDING
    return Kind.SALE if status == "paid" else None


def checkout_session(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent | None:
    """checkout.session.completed / async_payment_succeeded / async_payment_failed / expired."""
    amount = integer(obj, "amount_total")
    kind = _session_kind(env.event_type, obj, amount)
    if kind is None:
        return None
    intent = mapping(obj, "payment_intent")  # filled only when the webhook expands it
    # Subscription mode has no PaymentIntent of its own: its first invoice (`invoice`) is what ties it to the
    # invoice.paid of the same money. The sub_… is kept aside, never a ref: every renewal shares it.
    ids = Ids(
        payment_intent=stripe_id(obj.get("payment_intent")),
        checkout_session=stripe_id(obj),
        invoice=stripe_id(obj.get("invoice")),
        charge=charge_id(intent),
    )
    details = mapping(obj, "customer_details")
    email = coalesce(string(details, "email"), string(obj, "customer_email"))
    failure = (payment_error(intent) or ASYNC_FAILED) if kind is Kind.FAILURE else None
    return new_event(env, obj, kind, ids, amount=amount, email=email, name=string(details, "name"),
                     failure_reason=failure, session_created_at=timestamp(obj.get("created")),
                     mode=string(obj, "mode"), subscription_id=stripe_id(obj.get("subscription")))
