"""Normalised facts about money taken from Stripe events: what the intake stores and pings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.subscriptions.facts import SubscriptionFacts


class Kind(StrEnum):
    """What a Stripe event means for the store."""

    SALE = "sale"  # money was taken: an order is completed
    PENDING = "pending"  # a checkout finished but the money has not arrived yet (async methods)
    FAILURE = "failure"  # a payment attempt failed
    REFUND = "refund"  # some or all of a charge was given back
    # A refund failed or was canceled (charge.refund.updated, refund.failed, refund.updated): its money came back to
    # the account, so the order's refunded amount drops again (bot/intake/refunds.py), and the owner is told once per
    # refund in the alerts channel: the customer was not refunded (bot/intake/refund_pings.py).
    REFUND_VOID = "refund_void"
    DISPUTE = "dispute"  # a customer opened a chargeback
    # charge.dispute.closed / .funds_reinstated: a dispute was decided or its money came back; no ping, but its
    # balance transactions changed, so the order's Stripe figures (net) are read again (bot/stripe/settle.py).
    DISPUTE_SETTLED = "dispute_settled"
    CHECKOUT_EXPIRED = "checkout_expired"  # an abandoned checkout timed out
    # More ids of one payment (invoice_payment.paid: in_ ↔ pi_; charge.succeeded: ch_ ↔ pi_), and the customer
    # where the event names one. Never a sale and never a ping: every order it shares a ref with is the same order.
    LINK = "link"
    # A checkout or invoice completed without taking money (a free trial, a 100% coupon). Not a sale.
    FREE = "free"
    # customer.subscription.*: a subscription's state and MRR (bot/subscriptions); never an order.
    SUBSCRIPTION = "subscription"


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One Stripe event reduced to the fields salespulse needs; amounts in minor units."""

    kind: Kind
    event_id: str
    event_type: str
    occurred_at: datetime  # the event's `created`, timezone-aware UTC
    livemode: bool
    # Every Stripe id that names the underlying payment (cs_…, pi_…, in_…, ch_…): the same payment
    # seen through several event types shares at least one of them, which is how it counts once.
    refs: tuple[str, ...]
    amount: int | None = None  # minor units; None when Stripe sent null (setup mode)
    currency: str | None = None  # ISO 4217, upper case
    customer_email: str | None = None
    customer_name: str | None = None
    product: str | None = None
    affiliate: str | None = None
    checkout_session_id: str | None = None
    payment_intent_id: str | None = None
    invoice_id: str | None = None
    charge_id: str | None = None
    failure_reason: str | None = None  # FAILURE: Stripe's message or decline code; REFUND_VOID: the Refund's code
    amount_refunded: int | None = None  # REFUND: cumulative amount refunded on the charge
    refund_id: str | None = None  # REFUND_VOID: the re_… that failed or was canceled (`amount` is its amount)
    refund_created_at: datetime | None = None  # REFUND_VOID: the refund's own `created`
    refund_status: str | None = None  # REFUND_VOID: "failed" or "canceled"
    dispute_id: str | None = None
    dispute_reason: str | None = None
    dispute_status: str | None = None
    session_created_at: datetime | None = None  # checkout session's own `created`
    api_version: str | None = None  # the envelope's `api_version`, e.g. "2025-03-31.basil"
    subscription_id: str | None = None  # sub_…: names every payment of a subscription, so never a ref
    billing_reason: str | None = None  # invoices: subscription_create, subscription_cycle, manual, …
    mode: str | None = None  # checkout sessions: payment, subscription, setup
    # True when the object's API version (2025-03-31.basil and later) no longer says whether this PaymentIntent
    # or Charge paid an invoice: the invoice's own event may describe the same money, and only an
    # invoice_payment.paid LINK ties the two together.
    invoice_unstated: bool = False
    # A PaymentIntent Stripe describes as "Subscription update": it paid a subscription invoice that is not the
    # subscription's first (a renewal, or a change charged at once). Its invoice says which; until it arrives the
    # sale ping is held as a renewal's would be (bot/subscriptions/renewals.py).
    renewal_likely: bool = False
    # FAILURE of an invoice's PaymentIntent: the invoice's own invoice.payment_failed tells the attempt (fold.py).
    invoice_attempt: bool = False
    # FAILURE of an invoice or of its PaymentIntent: the cus_… paying, which ties the two from basil on, when neither
    # names the other (bot/intake/declines.py).
    customer_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    subscription: SubscriptionFacts | None = None  # SUBSCRIPTION: the subscription as the event shows it

    @property
    def order_ref(self) -> str:
        """The id an order created from this event is known by: the first ref."""
        return self.refs[0]


class MalformedEvent(ValueError):
    """The body is JSON but not a Stripe event (no id, type or data.object)."""
