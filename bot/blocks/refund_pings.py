"""The ping for a refund that failed or was canceled after it was made: the customer did not get the money back.

A failure (a closed card, a bank that sent it back) is something the owner must act on: the money is back in the
Stripe balance and the customer still waits for it. A cancellation is a kind of failure too, but nearly always the
store's own doing (a refund waiting for the customer's bank details, called off in the Dashboard or the API), so it
is told as a fact, not an alarm: https://docs.stripe.com/refunds#failed-refunds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from bot.blocks.elements import context, fields, header, message, when
from bot.blocks.message import Message
from bot.blocks.pings import UNKNOWN, customer_shown, money_shown, shown

FAILED_TITLE: Final = "❌ Refund failed"
CANCELED_TITLE: Final = "🚫 Refund canceled"
FAILED_NOTE: Final = ("⚠️ The customer has not been refunded and the money is back in your Stripe balance:"
                      " refund them another way")
CANCELED_NOTE: Final = "The money stayed in your Stripe balance: refund again if the customer is still owed"
UNKNOWN_SALE_NOTE: Final = ("salespulse does not know its sale (made before it was installed, or not arrived yet):"
                             " look the charge up in the Stripe dashboard")

# Stripe's Refund `failure_reason` codes in plain words, as the failed-payment ping gives the bank's own words:
# https://docs.stripe.com/api/refunds/object#refund_object-failure_reason. A code not listed here (a newer one) is
# shown as Stripe spells it, underscores as spaces.
FAILURE_REASONS: Final[Mapping[str, str]] = {
    "lost_or_stolen_card": "The card was reported lost or stolen",
    "expired_or_canceled_card": "The card has expired or was canceled",
    "charge_for_pending_refund_disputed": "The customer disputed the payment while the refund was pending",
    "insufficient_funds": "The Stripe balance could not cover the refund",
    "declined": "The customer's bank declined it",
    "merchant_request": "Canceled by the store",
    "unknown": "Stripe was not told why",
}


@dataclass(frozen=True, slots=True)
class RefundVoidView:
    """A refund that failed or was canceled; `amount` in minor units of `currency`."""

    refund_id: str
    canceled: bool  # status `canceled`; else `failed`
    amount: int | None
    currency: str | None
    reason: str | None  # Stripe's `failure_reason` code
    occurred_at: datetime
    charge_id: str | None  # the charge refunded (its PaymentIntent when the refund names no charge)
    product: str | None = None  # the order's, when its sale is known
    customer_email: str | None = None
    sale_known: bool = True  # False: the refund came before its sale, which the charge alone names


def reason_words(code: str | None) -> str:
    """A `failure_reason` code in plain words; "Unknown" when Stripe sent none."""
    if code is None or not code.strip():
        return UNKNOWN
    return shown(FAILURE_REASONS.get(code) or code.replace("_", " "))


def refund_void_message(v: RefundVoidView, *, tz: ZoneInfo) -> Message:
    """The ping: what failed or was canceled, how much, why, on which order's product and charge, to whom."""
    title = CANCELED_TITLE if v.canceled else FAILED_TITLE
    amount, reason = money_shown(v.amount, v.currency), reason_words(v.reason)
    blocks = [
        header(title),
        fields(
            ("Amount", amount),
            ("Reason", reason),
            ("Product", shown(v.product)),
            ("Customer", customer_shown(v.customer_email)),
            ("Refund ID", shown(v.refund_id)),
            ("Charge", shown(v.charge_id)),
        ),
    ]
    notes = [CANCELED_NOTE if v.canceled else FAILED_NOTE]
    if not v.sale_known:
        notes.append(UNKNOWN_SALE_NOTE)
    blocks.append(context(*notes, f"⏰ {when(v.occurred_at, tz)}"))
    return message(f"{title}: {amount} — {reason}", blocks)
