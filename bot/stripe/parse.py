"""Reduce a decoded Stripe webhook event to a PaymentEvent, whatever shape the JSON takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from bot.intake.events import Kind, MalformedEvent, PaymentEvent

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
    obj = _dict(raw, "data").get("object")
    if not isinstance(obj, Mapping):
        raise MalformedEvent("the event has no object at `data.object`")
    handler = _HANDLERS.get(event_type)
    if handler is None:
        return None
    occurred_at = _timestamp(raw.get("created")) or _timestamp(obj.get("created"))
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


# Tolerant readers: any field may be missing, null or of another type, and none of them raise.


def _dict(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The object at obj[key], or an empty mapping."""
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    """The non-blank string at obj[key]; blank strings (an address's "" line2) mean unknown."""
    value = obj.get(key)
    return value if isinstance(value, str) and value.strip() else None


# Stripe's largest amounts have 8 digits; anything beyond PostgreSQL's bigint is not an amount.
_MAX_AMOUNT = 2**63 - 1


def _int(obj: Mapping[str, Any], key: str) -> int | None:
    """The integer at obj[key]; a bool is an int to Python but never an amount, nor is a 30-digit number."""
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and -_MAX_AMOUNT <= value <= _MAX_AMOUNT:
        return value
    return None


def _id(value: Any) -> str | None:
    """A Stripe id given as the id string or as the expanded object that carries it."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _first(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The first item of the Stripe list object at obj[key] (`{"object": "list", "data": [...]}`)."""
    data = _dict(obj, key).get("data")
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        return data[0]
    return {}


def _coalesce(*values: str | None) -> str | None:
    """The first value that is a non-empty string."""
    return next((value for value in values if value), None)


def _timestamp(value: Any) -> datetime | None:
    """Unix seconds as an aware UTC datetime, or None when absent or out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):  # years beyond 9999, NaN and infinities
        return None


def _currency(obj: Mapping[str, Any]) -> str | None:
    """The ISO 4217 code, upper case; anything that cannot be one is dropped before money formatting."""
    code = _str(obj, "currency")
    return code.upper() if code and len(code) == 3 and code.isascii() and code.isalpha() else None


def _string_pairs(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The str→str pairs of a metadata object, scalars stringified and nested values dropped."""
    pairs: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, bool):
            pairs[key] = "true" if value else "false"  # JSON's spelling, not Python's
        elif isinstance(value, str | int | float):
            pairs[key] = str(value)
    return pairs


def _product(obj: Mapping[str, Any], metadata: Mapping[str, str]) -> str | None:
    """What was sold: a metadata key, else the description, else the first invoice line's name."""
    line = _first(obj, "lines")
    return _coalesce(
        *(metadata.get(key) for key in _PRODUCT_KEYS),
        _str(obj, "description"),
        _str(line, "description"),
        _str(_dict(line, "price"), "nickname"),
        _str(_dict(line, "plan"), "nickname"),
    )


def _charge_of(payment_intent: Mapping[str, Any]) -> Mapping[str, Any]:
    """A PaymentIntent's charge: an expanded `latest_charge`, or `charges.data[0]` (API before 2022-11-15)."""
    latest = payment_intent.get("latest_charge")
    return latest if isinstance(latest, Mapping) else _first(payment_intent, "charges")


def _charge_id(payment_intent: Mapping[str, Any]) -> str | None:
    """The id of a PaymentIntent's charge, whether `latest_charge` is an id or expanded."""
    return _coalesce(_id(payment_intent.get("latest_charge")), _id(_first(payment_intent, "charges")))


def _payment_error(payment_intent: Mapping[str, Any]) -> str | None:
    """Why a PaymentIntent's last attempt failed, in the words Stripe gives."""
    error = _dict(payment_intent, "last_payment_error")
    return _coalesce(_str(error, "message"), _str(error, "decline_code"), _str(error, "code"))


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
    metadata = _string_pairs(_dict(obj, "metadata"))
    return PaymentEvent(
        kind=kind,
        event_id=env.event_id,
        event_type=env.event_type,
        occurred_at=env.occurred_at,
        livemode=env.livemode,
        refs=ids.refs(_id(obj)),
        amount=amount,
        currency=_currency(obj),
        customer_email=email,
        customer_name=name,
        product=_product(obj, metadata),
        affiliate=_coalesce(*(metadata.get(key) for key in _AFFILIATE_KEYS)),
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
    if _str(obj, "mode") == "setup" or amount is None or amount <= 0:
        return None
    status = _str(obj, "payment_status")
    if status == "unpaid":
        # Delayed methods (SEPA, ACH, Boleto) complete unpaid; async_payment_succeeded/failed follows.
        # https://docs.stripe.com/checkout/fulfillment
        return Kind.PENDING
    return Kind.SALE if status in ("paid", "no_payment_required") else None


def _checkout_session(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent | None:
    """checkout.session.completed / async_payment_succeeded / async_payment_failed / expired."""
    amount = _int(obj, "amount_total")
    kind = _session_kind(env.event_type, obj, amount)
    if kind is None:
        return None
    intent = _dict(obj, "payment_intent")  # filled only when the webhook expands it
    ids = _Ids(
        payment_intent=_id(obj.get("payment_intent")),
        checkout_session=_id(obj),
        invoice=_id(obj.get("invoice")),
        charge=_charge_id(intent),
    )
    details = _dict(obj, "customer_details")
    email = _coalesce(_str(details, "email"), _str(obj, "customer_email"))
    event = _event(env, obj, kind, ids, amount=amount, email=email, name=_str(details, "name"))
    event = replace(event, session_created_at=_timestamp(obj.get("created")))
    if kind is Kind.FAILURE:
        event = replace(event, failure_reason=_payment_error(intent) or "Asynchronous payment failed")
    return event


def _payment_intent(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """payment_intent.succeeded / payment_intent.payment_failed."""
    charge = _charge_of(obj)
    error = _dict(obj, "last_payment_error")
    ids = _Ids(
        payment_intent=_id(obj),
        invoice=_id(obj.get("invoice")),
        charge=_coalesce(_charge_id(obj), _id(error.get("charge"))),
    )
    billing = _dict(charge, "billing_details")
    failed_billing = _dict(_dict(error, "payment_method"), "billing_details")
    email = _coalesce(
        _str(obj, "receipt_email"),
        _str(billing, "email"),
        _str(charge, "receipt_email"),
        _str(failed_billing, "email"),
    )
    name = _coalesce(_str(billing, "name"), _str(failed_billing, "name"))
    if env.event_type == "payment_intent.succeeded":
        # amount_received is what was actually captured; 0 or absent on odd payloads, so fall back.
        amount = _int(obj, "amount_received") or _int(obj, "amount")
        return _event(env, obj, Kind.SALE, ids, amount=amount, email=email, name=name)
    event = _event(env, obj, Kind.FAILURE, ids, amount=_int(obj, "amount"), email=email, name=name)
    return replace(event, failure_reason=_payment_error(obj) or "Payment failed")


def _charge_refunded(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """charge.refunded: `amount_refunded` is cumulative, so a partial refund is amount_refunded < amount."""
    ids = _Ids(
        payment_intent=_id(obj.get("payment_intent")), invoice=_id(obj.get("invoice")), charge=_id(obj)
    )
    billing = _dict(obj, "billing_details")
    email, name = _coalesce(_str(billing, "email"), _str(obj, "receipt_email")), _str(billing, "name")
    event = _event(env, obj, Kind.REFUND, ids, amount=_int(obj, "amount"), email=email, name=name)
    return replace(event, amount_refunded=_int(obj, "amount_refunded"))


def _dispute(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """charge.dispute.created: the dispute names its charge (an id, or the expanded Charge)."""
    charge = _dict(obj, "charge")
    ids = _Ids(
        payment_intent=_coalesce(_id(obj.get("payment_intent")), _id(charge.get("payment_intent"))),
        invoice=_id(charge.get("invoice")),
        charge=_id(obj.get("charge")),
    )
    billing = _dict(charge, "billing_details")
    email, name = _coalesce(_str(billing, "email"), _str(charge, "receipt_email")), _str(billing, "name")
    event = _event(env, obj, Kind.DISPUTE, ids, amount=_int(obj, "amount"), email=email, name=name)
    return replace(
        event, dispute_id=_id(obj), dispute_reason=_str(obj, "reason"), dispute_status=_str(obj, "status")
    )


def _invoice(env: _Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """invoice.paid / invoice.payment_failed, in the old shape and the 2025-03 "basil" one."""
    # Basil moved `payment_intent` and `charge` off the invoice into `payments` (sent only when expanded):
    # https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices
    payment = _dict(_first(obj, "payments"), "payment")
    ids = _Ids(
        payment_intent=_coalesce(_id(obj.get("payment_intent")), _id(payment.get("payment_intent"))),
        invoice=_id(obj),
        charge=_coalesce(_id(obj.get("charge")), _id(payment.get("charge"))),
    )
    email, name = _str(obj, "customer_email"), _str(obj, "customer_name")
    if env.event_type == "invoice.paid":
        return _event(env, obj, Kind.SALE, ids, amount=_int(obj, "amount_paid"), email=email, name=name)
    event = _event(env, obj, Kind.FAILURE, ids, amount=_int(obj, "amount_due"), email=email, name=name)
    return replace(event, failure_reason=_invoice_failure(obj))


def _invoice_failure(obj: Mapping[str, Any]) -> str:
    """Why an invoice was not paid: Stripe's message when it sent one, else which attempt failed."""
    message = _coalesce(
        _str(_dict(obj, "last_finalization_error"), "message"), _payment_error(_dict(obj, "payment_intent"))
    )
    if message:
        return message
    attempt = _int(obj, "attempt_count")
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
