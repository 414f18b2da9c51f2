"""Reduce a decoded Stripe webhook event to a PaymentEvent, whatever shape the JSON takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from bot.intake.events import Kind, MalformedEvent, PaymentEvent
from bot.stripe.fields import (
    coalesce,
    currency,
    first_item,
    integer,
    mapping,
    string,
    string_pairs,
    stripe_id,
    timestamp,
)

# Metadata keys, best first. `offerId` is last: the original integration guide keyed offers by it.
_PRODUCT_KEYS: Final = ("productName", "product_name", "product", "offerId")
_AFFILIATE_KEYS: Final = ("affiliateId", "affiliate_id", "affiliate", "ref")


def parse_event(raw: Mapping[str, Any]) -> PaymentEvent | None:
    """The PaymentEvent in a Stripe webhook body, or None when salespulse has nothing to record."""
    if not isinstance(raw, Mapping):
        raise MalformedEvent(f"a Stripe event is a JSON object, not {type(raw).__name__}")
    event_id, event_type = raw.get("id"), raw.get("type")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEvent("the event has no string `id`")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("the event has no string `type`")
    obj = mapping(raw, "data").get("object")
    if not isinstance(obj, Mapping):
        raise MalformedEvent("the event has no object at `data.object`")
    handler = _HANDLERS.get(event_type)
    if handler is None:
        return None
    occurred_at = timestamp(raw.get("created")) or timestamp(obj.get("created"))
    if occurred_at is None:
        raise MalformedEvent("neither the event nor its object has a valid `created` time")
    livemode = raw.get("livemode")
    return handler(_Envelope(event_id, event_type, occurred_at, livemode is True), obj)


@dataclass(frozen=True, slots=True)
class _Envelope:
    """The event-level facts every PaymentEvent carries."""

    event_id: str
    event_type: str
    occurred_at: datetime
    livemode: bool


@dataclass(frozen=True, slots=True)
class _Ids:
    """The Stripe ids that name the underlying payment, by role."""

    payment_intent: str | None = None
    checkout_session: str | None = None
    invoice: str | None = None
    charge: str | None = None

    def refs(self, own_id: str | None) -> tuple[str, ...]:
        """Distinct ids, PaymentIntent first: it is the one id every event type of a payment can reach."""
        ordered = (self.payment_intent, self.checkout_session, self.invoice, self.charge)
        refs = tuple(dict.fromkeys(ref for ref in ordered if ref))
        if refs:
            return refs
        if own_id:
            return (own_id,)
        raise MalformedEvent("`data.object` has no Stripe id to know the payment by")


def _product(obj: Mapping[str, Any], metadata: Mapping[str, str]) -> str | None:
    """What was sold: a metadata key, else the description, else the first invoice line's name."""
    line = first_item(obj, "lines")
    return coalesce(
        *(metadata.get(key) for key in _PRODUCT_KEYS),
        string(obj, "description"),
        string(line, "description"),
        string(mapping(line, "price"), "nickname"),
        string(mapping(line, "plan"), "nickname"),
    )


def _charge_of(payment_intent: Mapping[str, Any]) -> Mapping[str, Any]:
    """A PaymentIntent's charge: an expanded `latest_charge`, or `charges.data[0]` (API before 2022-11-15)."""
    latest = payment_intent.get("latest_charge")
    return latest if isinstance(latest, Mapping) else first_item(payment_intent, "charges")


def _charge_id(payment_intent: Mapping[str, Any]) -> str | None:
    """The id of a PaymentIntent's charge, whether `latest_charge` is an id or expanded."""
    return coalesce(stripe_id(payment_intent.get("latest_charge")), stripe_id(first_item(payment_intent, "charges")))


def _payment_error(payment_intent: Mapping[str, Any]) -> str | None:
    """Why a PaymentIntent's last attempt failed, in the words Stripe gives."""
    error = mapping(payment_intent, "last_payment_error")
    return coalesce(string(error, "message"), string(error, "decline_code"), string(error, "code"))


def _event(
    env: _Envelope,
    obj: Mapping[str, Any],
    kind: Kind,
    ids: _Ids,
    *,
    amount: int | None,
    email: str | None,
    name: str | None,
) -> PaymentEvent:
    """The PaymentEvent fields every kind shares; callers `replace` in the kind-specific ones."""
    metadata = string_pairs(mapping(obj, "metadata"))
    return PaymentEvent(
        kind=kind,
        event_id=env.event_id,
        event_type=env.event_type,
        occurred_at=env.occurred_at,
        livemode=env.livemode,
        refs=ids.refs(stripe_id(obj)),
        amount=amount,
        currency=currency(obj),
        customer_email=email,
        customer_name=name,
        product=_product(obj, metadata),
        affiliate=coalesce(*(metadata.get(key) for key in _AFFILIATE_KEYS)),
        checkout_session_id=ids.checkout_session,
        payment_intent_id=ids.payment_intent,
        invoice_id=ids.invoice,
        charge_id=ids.charge,
        metadata=metadata,
    )


# One reader per Stripe object type; the event type picks the kind.


_SESSION_KINDS: Final = {
    "checkout.session.async_payment_succeeded": Kind.SALE,
    "checkout.session.async_payment_failed": Kind.FAILURE,
    "checkout.session.expired": Kind.CHECKOUT_EXPIRED,
}


def _session_kind(event_type: str, obj: Mapping[str, Any], amount: int | None) -> Kind | None:
    """What a Checkout Session event means, or None when no money is involved."""
    if event_type in _SESSION_KINDS:
        return _SESSION_KINDS[event_type]
    # checkout.session.completed. Setup mode only saves a card (amount_total null), and a zero total
    # (a free trial, a 100% coupon) takes no money: neither is an order, so there is nothing to record.
    if string(obj, "mode") == "setup" or amount is None or amount <= 0:
        return None
    status = string(obj, "payment_status")
    if status == "unpaid":
        # Delayed methods (SEPA, ACH, Boleto) complete unpaid; async_payment_succeeded/failed follows.
        # https://docs.stripe.com/checkout/fulfillment
        return Kind.PENDING
    return Kind.SALE if status in ("paid", "no_payment_required") else None


def _checkout_session(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent | None:
    """checkout.session.completed / async_payment_succeeded / async_payment_failed / expired."""
    amount = integer(obj, "amount_total")
    kind = _session_kind(env.event_type, obj, amount)
    if kind is None:
        return None
    intent = mapping(obj, "payment_intent")  # filled only when the webhook expands it
    ids = _Ids(
        payment_intent=stripe_id(obj.get("payment_intent")),
        checkout_session=stripe_id(obj),
        invoice=stripe_id(obj.get("invoice")),
        charge=_charge_id(intent),
    )
    details = mapping(obj, "customer_details")
    email = coalesce(string(details, "email"), string(obj, "customer_email"))
    event = _event(env, obj, kind, ids, amount=amount, email=email, name=string(details, "name"))
    event = replace(event, session_created_at=timestamp(obj.get("created")))
    if kind is Kind.FAILURE:
        event = replace(event, failure_reason=_payment_error(intent) or "Asynchronous payment failed")
    return event


def _payment_intent(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """payment_intent.succeeded / payment_intent.payment_failed."""
    charge = _charge_of(obj)
    error = mapping(obj, "last_payment_error")
    ids = _Ids(
        payment_intent=stripe_id(obj),
        invoice=stripe_id(obj.get("invoice")),
        charge=coalesce(_charge_id(obj), stripe_id(error.get("charge"))),
    )
    billing = mapping(charge, "billing_details")
    failed_billing = mapping(mapping(error, "payment_method"), "billing_details")
    email = coalesce(
        string(obj, "receipt_email"),
        string(billing, "email"),
        string(charge, "receipt_email"),
        string(failed_billing, "email"),
    )
    name = coalesce(string(billing, "name"), string(failed_billing, "name"))
    if env.event_type == "payment_intent.succeeded":
        # amount_received is what was actually captured; 0 or absent on odd payloads, so fall back.
        amount = integer(obj, "amount_received") or integer(obj, "amount")
        return _event(env, obj, Kind.SALE, ids, amount=amount, email=email, name=name)
    event = _event(env, obj, Kind.FAILURE, ids, amount=integer(obj, "amount"), email=email, name=name)
    return replace(event, failure_reason=_payment_error(obj) or "Payment failed")


def _charge_refunded(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """charge.refunded: `amount_refunded` is cumulative, so a partial refund is amount_refunded < amount."""
    ids = _Ids(payment_intent=stripe_id(obj.get("payment_intent")), invoice=stripe_id(obj.get("invoice")),
               charge=stripe_id(obj))
    billing = mapping(obj, "billing_details")
    email, name = coalesce(string(billing, "email"), string(obj, "receipt_email")), string(billing, "name")
    event = _event(env, obj, Kind.REFUND, ids, amount=integer(obj, "amount"), email=email, name=name)
    return replace(event, amount_refunded=integer(obj, "amount_refunded"))


def _dispute(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """charge.dispute.created: the dispute names its charge (an id, or the expanded Charge)."""
    charge = mapping(obj, "charge")
    ids = _Ids(
        payment_intent=coalesce(stripe_id(obj.get("payment_intent")), stripe_id(charge.get("payment_intent"))),
        invoice=stripe_id(charge.get("invoice")),
        charge=stripe_id(obj.get("charge")),
    )
    billing = mapping(charge, "billing_details")
    email, name = coalesce(string(billing, "email"), string(charge, "receipt_email")), string(billing, "name")
    event = _event(env, obj, Kind.DISPUTE, ids, amount=integer(obj, "amount"), email=email, name=name)
    return replace(
        event, dispute_id=stripe_id(obj), dispute_reason=string(obj, "reason"), dispute_status=string(obj, "status")
    )


def _invoice(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """invoice.paid / invoice.payment_failed, in the old shape and the 2025-03 "basil" one."""
    # Basil moved `payment_intent` and `charge` off the invoice into `payments` (sent only when expanded):
    # https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices
    payment = mapping(first_item(obj, "payments"), "payment")
    ids = _Ids(
        payment_intent=coalesce(stripe_id(obj.get("payment_intent")), stripe_id(payment.get("payment_intent"))),
        invoice=stripe_id(obj),
        charge=coalesce(stripe_id(obj.get("charge")), stripe_id(payment.get("charge"))),
    )
    email, name = string(obj, "customer_email"), string(obj, "customer_name")
    if env.event_type == "invoice.paid":
        return _event(env, obj, Kind.SALE, ids, amount=integer(obj, "amount_paid"), email=email, name=name)
    event = _event(env, obj, Kind.FAILURE, ids, amount=integer(obj, "amount_due"), email=email, name=name)
    return replace(event, failure_reason=_invoice_failure(obj))


def _invoice_failure(obj: Mapping[str, Any]) -> str:
    """Why an invoice was not paid: Stripe's message when it sent one, else which attempt failed."""
    message = coalesce(
        string(mapping(obj, "last_finalization_error"), "message"), _payment_error(mapping(obj, "payment_intent"))
    )
    if message:
        return message
    attempt = integer(obj, "attempt_count")
    return f"Invoice payment failed (attempt {attempt})" if attempt else "Invoice payment failed"


_Handler = Callable[[_Envelope, Mapping[str, Any]], PaymentEvent | None]

# charge.succeeded and invoice.payment_succeeded are left out on purpose: they report the same payment as
# payment_intent.succeeded / invoice.paid, and counting both would double the sale.
_HANDLERS: Final[Mapping[str, _Handler]] = {
    "checkout.session.completed": _checkout_session,
    "checkout.session.async_payment_succeeded": _checkout_session,
    "checkout.session.async_payment_failed": _checkout_session,
    "checkout.session.expired": _checkout_session,
    "payment_intent.succeeded": _payment_intent,
    "payment_intent.payment_failed": _payment_intent,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute,
    "invoice.paid": _invoice,
    "invoice.payment_failed": _invoice,
}

HANDLED_TYPES: Final = frozenset(_HANDLERS)  # the event types to enable on the Stripe webhook endpoint
