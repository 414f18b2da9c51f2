"""The ping for a refund that failed or was canceled after it was made: the customer did not get the money back.

A failure (a closed card, a bank that sent it back) is something the owner must act on: the money is back in the
Stripe balance and the customer still waits for it. A cancellation is a kind of failure too, but nearly always the
store's own doing (a refund waiting for the customer's bank details, called off in the Dashboard or the API), so it
is told as a fact, not an alarm: https://docs.stripe.com/refunds#failed-refunds.

Several waiting at once go out as one message (bot/blocks/ping_burst.py), which counts each kind apart: "⚠️ 2 refunds
failed, 1 was canceled", each listed line marked by its own kind.
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

VOID_KIND: Final = "refund_void"  # the outbox kind of these pings, whose bursts are said here
FAILED_MARK: Final = "❌"  # marks a failure among cancellations in a burst
CANCELED_MARK: Final = "🚫"
FAILED_TITLE: Final = f"{FAILED_MARK} Refund failed"  # the ping's header, and its text's start before ": "
CANCELED_TITLE: Final = f"{CANCELED_MARK} Refund canceled"
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


@dataclass(frozen=True, slots=True)
class VoidBurst:
    """How many of a burst of these pings failed and how many were canceled (told by their titles)."""

    failed: int
    canceled: int

    @property
    def mixed(self) -> bool:
        return self.failed > 0 and self.canceled > 0

    def headline(self) -> str:
        """"❌ 3 refunds failed", "🚫 2 refunds canceled", or both: "⚠️ 2 refunds failed, 1 was canceled"."""
        if not self.canceled:
            return f"{FAILED_MARK} {_refunds(self.failed)} failed"
        if not self.failed:
            return f"{CANCELED_MARK} {_refunds(self.canceled)} canceled"
        were = "was" if self.canceled == 1 else "were"
        return f"⚠️ {_refunds(self.failed)} failed, {self.canceled:,} {were} canceled"

    def line(self, text: str) -> str:
        """A listed ping's text without its title (the headline says it), marked by its own kind when the burst
        mixes both: "❌ $49.00 — The card was reported lost or stolen", "🚫 $10.00 — Canceled by the store"."""
        for mark, title in ((FAILED_MARK, FAILED_TITLE), (CANCELED_MARK, CANCELED_TITLE)):
            if text.startswith(f"{title}: "):
                said = text.removeprefix(f"{title}: ")
                return f"{mark} {said}" if self.mixed else said
        return text


def void_burst(titles: Mapping[str, int], count: int) -> VoidBurst | None:
    """A burst of `count` of these pings by kind, from how many have each title (queries/bursts.py counts them all,
    not only the ones listed); None when some have another (a newer release's wording): then said as any burst."""
    failed, canceled = titles.get(FAILED_TITLE, 0), titles.get(CANCELED_TITLE, 0)
    return VoidBurst(failed, canceled) if count > 0 and failed + canceled == count else None


def _refunds(n: int) -> str:
    return f"{n:,} refund" + ("" if n == 1 else "s")
