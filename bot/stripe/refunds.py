"""Refund events: a refund that failed or was canceled, whose money came back to the account.

charge.refunded counts a refund when it is made (bot/stripe/payments.py). It can still fail afterwards (a closed card,
a bank that sends it back) or, while it waits for the customer's bank details, be canceled — "cancellations are a type
of refund failure" — and Stripe returns the amount to the account: https://docs.stripe.com/refunds#failed-refunds.
Stripe says so with charge.refund.updated and, for charges' refunds from 2024-10-28.acacia on, refund.failed (a
failure) and refund.updated (a cancellation): https://docs.stripe.com/changelog/acacia/2024-10-28/refund-webhook-update.
One failure may come as two or three of them, each naming the same re_…; the Refund object's keys are the same in
acacia, basil and clover (stripe/openapi fixtures3.json at each version's commit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from bot.intake.events import Kind, PaymentEvent
from bot.stripe.build import Envelope, Ids, new_event
from bot.stripe.fields import integer, string, stripe_id, timestamp

# https://docs.stripe.com/api/refunds/object#refund_object-status: pending, requires_action, succeeded, failed,
# canceled. The other three were counted by charge.refunded already.
VOID: Final = frozenset({"failed", "canceled"})


def refund_void(env: Envelope, obj: Mapping[str, Any]) -> PaymentEvent | None:
    """A Refund failed or canceled, as REFUND_VOID; None for any other update, and for a refund of no charge or
    PaymentIntent (a customer balance's), which is no order's."""
    status = string(obj, "status")
    if status not in VOID:
        return None
    refund_id, amount = stripe_id(obj), integer(obj, "amount")
    ids = Ids(payment_intent=stripe_id(obj.get("payment_intent")), charge=stripe_id(obj.get("charge")))
    if refund_id is None or amount is None or amount < 0 or not (ids.payment_intent or ids.charge):
        return None
    # The refund's metadata and description are its own, not the sale's: the order takes neither.
    bare = {"id": refund_id, "currency": obj.get("currency")}
    # failure_reason: lost_or_stolen_card, expired_or_canceled_card, …, merchant_request (most cancellations), unknown:
    # https://docs.stripe.com/api/refunds/object#refund_object-failure_reason
    return new_event(env, bare, Kind.REFUND_VOID, ids, amount=amount, email=None, name=None, product=None,
                     refund_id=refund_id, refund_created_at=timestamp(obj.get("created")), refund_status=status,
                     failure_reason=string(obj, "failure_reason"))
