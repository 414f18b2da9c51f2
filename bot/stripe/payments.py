"""PaymentIntent and Charge events: succeeded, failed, refunded, disputed, in every API version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.intake.events import Kind, PaymentEvent
from bot.stripe.build import Envelope, Ids, charge_id, charge_of, invoice_unstated, new_event, payment_error
from bot.stripe.fields import coalesce, integer, mapping, string, stripe_id

BASIL = "2025-03-31"  # api_version dates compare as strings: "2024-09-30.acacia" < "2025-03-31.basil"

RENEWAL_DESCRIPTION = "Subscription update"
# What Stripe writes on the PaymentIntent of an invoice: a subscription's first ("creation") and later ones, and a
# one-off invoice's.
INVOICE_DESCRIPTIONS = frozenset({"Subscription creation", RENEWAL_DESCRIPTION, "Payment for Invoice"})
UNSAID = "Payment failed"  # a failed PaymentIntent's reason when Stripe gave none


def payment_intent(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """payment_intent.succeeded / payment_intent.payment_failed."""
    charge = charge_of(obj)
    error = mapping(obj, "last_payment_error")
    ids = Ids(
        payment_intent=stripe_id(obj),
        invoice=stripe_id(obj.get("invoice")),  # gone from 2025-03-31.basil on: see invoice_unstated
        charge=coalesce(charge_id(obj), stripe_id(error.get("charge"))),
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
    # Stripe writes "Subscription creation" on a subscription's first payment and "Subscription update" on the
    # later ones, in every API version (the only renewal hint basil's PaymentIntent carries before its invoice).
    hints = {"invoice_unstated": invoice_unstated(obj),
             "renewal_likely": string(obj, "description") == RENEWAL_DESCRIPTION}
    if env.event_type == "payment_intent.succeeded":
        # amount_received is what was actually captured; 0 or absent on odd payloads, so fall back.
        amount = integer(obj, "amount_received") or integer(obj, "amount")
        return new_event(env, obj, Kind.SALE, ids, amount=amount, email=email, name=name, **hints)
    return new_event(env, obj, Kind.FAILURE, ids, amount=integer(obj, "amount"), email=email, name=name,
                     failure_reason=payment_error(obj) or UNSAID, invoice_attempt=_invoice_attempt(obj, ids),
                     customer_id=stripe_id(obj.get("customer")), **hints)


def _invoice_attempt(obj: Mapping[str, Any], ids: Ids) -> bool:
    """Whether a failed PaymentIntent was an invoice's (it says so before basil; from basil on only its description
    does): the invoice's own invoice.payment_failed tells that attempt, with the plan's name, so the PaymentIntent's
    event records no second failure."""
    if ids.invoice is not None:
        return True
    if string(obj, "description") not in INVOICE_DESCRIPTIONS:
        return False
    # From basil on, Checkout creates a subscription, and its invoice, only once the payment succeeds: a card declined
    # in the session has no invoice.payment_failed, and this event is the only word of it.
    # https://docs.stripe.com/changelog/basil/2025-03-31/checkout-legacy-subscription-upgrade
    order = string(mapping(obj, "payment_details"), "order_reference") or ""
    return not order.startswith("cs_")


def _charge_ids(obj: Mapping[str, Any]) -> Ids:
    """A Charge's own id, its PaymentIntent's and (before basil) its invoice's."""
    return Ids(payment_intent=stripe_id(obj.get("payment_intent")), invoice=stripe_id(obj.get("invoice")),
               charge=stripe_id(obj))


def charge_succeeded(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """charge.succeeded: a LINK, not a sale (payment_intent.succeeded counts the money), naming ch_ ↔ pi_.

    It is often the only event of a payment that names the customer: current PaymentIntents send
    `latest_charge` as a bare id, while the Charge carries `billing_details`. A legacy Charge (no PaymentIntent)
    paid and captured is the sale itself; one only authorised is counted by its charge.captured.
    """
    if _legacy(obj) and obj.get("paid") is True and obj.get("captured") is True:
        return _legacy_sale(env, obj)
    billing = mapping(obj, "billing_details")
    email, name = coalesce(string(billing, "email"), string(obj, "receipt_email")), string(billing, "name")
    return new_event(env, obj, Kind.LINK, _charge_ids(obj), amount=None, email=email, name=name,
                     invoice_unstated=invoice_unstated(obj))


def _legacy(obj: Mapping[str, Any]) -> bool:
    """Whether a Charge was made through the legacy Charges API (`POST /v1/charges` with a token or source): no
    PaymentIntent, so no payment_intent.* event tells of it. `payment_intent` is null, or absent in API versions
    older than PaymentIntents (2019-02-11), which old integrations still pin."""
    return stripe_id(obj.get("payment_intent")) is None


def _legacy_sale(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """A legacy Charge's money taken, as payment_intent.succeeded tells a PaymentIntent's. Before basil an invoice's
    Charge names it (`invoice`): one order with invoice.paid, which names the Charge back."""
    billing = mapping(obj, "billing_details")
    email, name = coalesce(string(billing, "email"), string(obj, "receipt_email")), string(billing, "name")
    # amount_captured: a partial capture takes less than was authorised (absent before 2019: then all of it).
    amount = integer(obj, "amount_captured") or integer(obj, "amount")
    return new_event(env, obj, Kind.SALE, _charge_ids(obj), amount=amount, email=email, name=name,
                     invoice_unstated=invoice_unstated(obj),
                     renewal_likely=string(obj, "description") == RENEWAL_DESCRIPTION)


def charge_captured(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent | None:
    """charge.captured: an authorised Charge captured (Stripe sends it only for a Charge created uncaptured). A
    legacy Charge's sale; a PaymentIntent's capture is told by its payment_intent.succeeded (None)."""
    return _legacy_sale(env, obj) if _legacy(obj) else None


def charge_failed(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent | None:
    """charge.failed: a legacy Charge declined, as payment_intent.payment_failed tells a PaymentIntent's failed
    attempt (which counts it: None for a Charge with one, so no attempt is told twice)."""
    if not _legacy(obj):
        return None
    ids = _charge_ids(obj)
    billing, outcome = mapping(obj, "billing_details"), mapping(obj, "outcome")
    email, name = coalesce(string(billing, "email"), string(obj, "receipt_email")), string(billing, "name")
    # In the order payment_error reads a PaymentIntent's: the message, the decline code, the error code.
    reason = coalesce(string(obj, "failure_message"), string(outcome, "reason"), string(obj, "failure_code"),
                      string(outcome, "seller_message"))
    return new_event(env, obj, Kind.FAILURE, ids, amount=integer(obj, "amount"), email=email, name=name,
                     failure_reason=reason or UNSAID, invoice_attempt=_invoice_attempt(obj, ids),
                     customer_id=stripe_id(obj.get("customer")), invoice_unstated=invoice_unstated(obj))


def _before_basil(env: Envelope, obj: Mapping[str, Any]) -> bool:
    """Whether the Charge is rendered in an API version before 2025-03-31.basil: the envelope says, else (a backfill's
    listed object carries none) its shape does."""
    if env.api_version:
        return env.api_version[:len(BASIL)] < BASIL
    return not invoice_unstated(obj)


def charge_refunded(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent | None:
    """charge.refunded: `amount_refunded` is cumulative, so a partial refund is amount_refunded < amount.

    Before basil Stripe also records the authorised amount a partial capture leaves uncaptured, and a whole
    authorisation cancelled or expired, as a Refund, and sends charge.refunded for it: no money came back then. An
    uncaptured Charge's event is no refund (None, as an event type not handled), and a captured one's released
    remainder (amount − amount_captured) is taken off amount_refunded; nothing left, no refund. From basil on neither
    flow makes a Refund.
    https://docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow
    """
    amount, refunded = integer(obj, "amount"), integer(obj, "amount_refunded")
    if _before_basil(env, obj):
        if obj.get("captured") is False:
            return None
        captured = integer(obj, "amount_captured")
        if amount is not None and refunded is not None and captured is not None and captured < amount:
            amount, refunded = captured, refunded - (amount - captured)
            if refunded <= 0:
                return None
    billing = mapping(obj, "billing_details")
    email, name = coalesce(string(billing, "email"), string(obj, "receipt_email")), string(billing, "name")
    return new_event(env, obj, Kind.REFUND, _charge_ids(obj), amount=amount, email=email, name=name,
                     amount_refunded=refunded)


def _dispute(env: Envelope, obj: Mapping[str, Any], kind: Kind) -> PaymentEvent:
    """A Dispute object: it names its charge (an id, or the expanded Charge)."""
    charge = mapping(obj, "charge")
    ids = Ids(
        payment_intent=coalesce(stripe_id(obj.get("payment_intent")), stripe_id(charge.get("payment_intent"))),
        invoice=stripe_id(charge.get("invoice")),
        charge=stripe_id(obj.get("charge")),
    )
    billing = mapping(charge, "billing_details")
    email, name = coalesce(string(billing, "email"), string(charge, "receipt_email")), string(billing, "name")
    return new_event(env, obj, kind, ids, amount=integer(obj, "amount"), email=email, name=name,
                     dispute_id=stripe_id(obj), dispute_reason=string(obj, "reason"),
                     dispute_status=string(obj, "status"))


def dispute(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """charge.dispute.created."""
    return _dispute(env, obj, Kind.DISPUTE)


def dispute_settled(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """charge.dispute.closed (won, lost, warning_closed) or charge.dispute.funds_reinstated: the same Dispute
    object, whose balance_transactions now hold the reinstatement (a positive amount and the dispute fee back)."""
    return _dispute(env, obj, Kind.DISPUTE_SETTLED)
