"""Invoice events in every API version: invoice.paid, invoice.payment_failed and basil's invoice_payment.paid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.intake.events import Kind, PaymentEvent
from bot.stripe.build import Envelope, Ids, new_event, payment_error
from bot.stripe.fields import coalesce, first_item, integer, mapping, string, stripe_id

# Basil (2025-03-31) took `payment_intent`, `charge` and `subscription` off the Invoice: payments moved to the
# InvoicePayment list `payments` (sent only when expanded) and the invoice_payment.paid event, the subscription
# to `parent.subscription_details`.
# https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices

# A failed invoice's reason when it gives none (it seldom does): its PaymentIntent's failure tells the bank's, and
# then replaces this (bot/intake/declines.py).
UNTOLD = "Invoice payment failed"

def _payments(invoice: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The `payment` hashes of an invoice's expanded InvoicePayment list, in Stripe's order."""
    data = mapping(invoice, "payments").get("data")
    if not isinstance(data, Sequence) or isinstance(data, str):
        return []
    return [mapping(item, "payment") for item in data if isinstance(item, Mapping)]


def subscription_of(invoice: Mapping[str, Any]) -> str | None:
    """The sub_… an invoice bills: top-level before basil, under `parent` (or its first line's) from basil on."""
    line_parent = mapping(mapping(first_item(invoice, "lines"), "parent"), "subscription_item_details")
    return coalesce(
        stripe_id(invoice.get("subscription")),
        stripe_id(mapping(mapping(invoice, "parent"), "subscription_details").get("subscription")),
        stripe_id(line_parent.get("subscription")),
    )


def _invoice_ids(invoice: Mapping[str, Any]) -> Ids:
    """in_…, and the pi_/ch_ that paid it where the payload says (acacia fields, or basil's expanded payments)."""
    paid = [p for p in _payments(invoice) if p.get("payment_intent") or p.get("charge")]
    first = paid[0] if paid else {}
    return Ids(
        payment_intent=coalesce(stripe_id(invoice.get("payment_intent")), stripe_id(first.get("payment_intent"))),
        invoice=stripe_id(invoice),
        charge=coalesce(stripe_id(invoice.get("charge")), stripe_id(first.get("charge"))),
    )


def invoice(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent:
    """invoice.paid / invoice.payment_failed, in the old shape and the basil one; a $0 paid invoice is FREE."""
    ids = _invoice_ids(obj)
    email, name = string(obj, "customer_email"), string(obj, "customer_name")
    # The sub_… is read whatever the kind: every invoice of a subscription names it.
    billing = {"subscription_id": subscription_of(obj), "billing_reason": string(obj, "billing_reason")}
    if env.event_type == "invoice.paid":
        amount = integer(obj, "amount_paid")
        # A trial's first invoice (or a 100% coupon) is "paid" with nothing taken: not a sale.
        kind = Kind.SALE if amount is None or amount > 0 else Kind.FREE
        return new_event(env, obj, kind, ids, amount=amount, email=email, name=name, **billing)
    return new_event(env, obj, Kind.FAILURE, ids, amount=integer(obj, "amount_due"), email=email, name=name,
                     failure_reason=_invoice_failure(obj), customer_id=stripe_id(obj.get("customer")), **billing)


def _invoice_failure(obj: Mapping[str, Any]) -> str:
    """Why an invoice was not paid: Stripe's message when it sent one, else which attempt failed."""
    message = coalesce(
        string(mapping(obj, "last_finalization_error"), "message"), payment_error(mapping(obj, "payment_intent"))
    )
    if message:
        return message
    attempt = integer(obj, "attempt_count")
    return f"{UNTOLD} (attempt {attempt})" if attempt else UNTOLD


def invoice_payment(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent | None:
    """invoice_payment.paid: the InvoicePayment that ties an invoice to the PaymentIntent or Charge that paid it.

    A LINK: refs (pi_…, in_…) or (in_…, ch_…), no amount (one invoice may be paid in several parts, so the part
    is not the order's total). None when it names only one side (a payment_record, an out-of-band payment).
    """
    payment = mapping(obj, "payment")
    ids = Ids(
        payment_intent=stripe_id(payment.get("payment_intent")),
        invoice=stripe_id(obj.get("invoice")),
        charge=stripe_id(payment.get("charge")),
    )
    if ids.invoice is None or (ids.payment_intent is None and ids.charge is None):
        return None
    return new_event(env, obj, Kind.LINK, ids, amount=None, email=None, name=None, product=None)
