"""The demo store's Stripe events: paid checkouts, declined cards and refunds shaped like Stripe's own
payloads (test mode), with unique ids, and signed exactly as Stripe signs webhooks."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
from dataclasses import dataclass
from typing import Any, Final

from bot.demo.seed import (
    AFFILIATE_SHARE,
    AFFILIATES,
    CURRENCY_WEIGHTS,
    DECLINES,
    DOMAINS,
    FIRST,
    LAST,
    PRICES,
    PRODUCT_WEIGHTS,
    PRODUCTS,
)
from bot.demo.subscriptions import DemoSubscriptions

API_VERSION: Final = "2024-06-20"
REFUNDABLE: Final = 500  # recent sales a refund may pick from


def sign(body: bytes, secret: str, *, timestamp: int) -> str:
    """The Stripe-Signature header for `body`: t=…,v1=HMAC-SHA256(secret, "t.body") in hex.

    https://docs.stripe.com/webhooks#verify-manually
    """
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True, slots=True)
class Sale:
    """A paid order the simulator made up, remembered so it can be refunded later."""

    payment_intent: str
    amount: int
    currency: str
    email: str
    name: str
    product: str


class EventFactory:
    """Makes the events of one demo run; `run` goes into every id, so two runs never collide."""

    def __init__(self, rng: random.Random, *, run: str) -> None:
        self.rng = rng
        self.run = run
        self._ids = itertools.count(1)
        self.sales: list[Sale] = []

    def _id(self, prefix: str) -> str:
        return f"{prefix}_demo{self.run}{next(self._ids):06d}"

    def _customer(self) -> tuple[str, str]:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        handle = f"{first}.{last}".lower().replace("ü", "ue")
        return f"{handle}@{self.rng.choice(DOMAINS)}", f"{first} {last}"

    def _basket(self) -> tuple[str, int, str]:
        """(product, amount in minor units, currency)."""
        product = self.rng.choices(range(len(PRODUCTS)), weights=PRODUCT_WEIGHTS)[0]
        currency = self.rng.choices(list(CURRENCY_WEIGHTS), weights=list(CURRENCY_WEIGHTS.values()))[0]
        return PRODUCTS[product], PRICES[currency][product], currency

    def _event(self, kind: str, obj: dict[str, Any], now: int) -> dict[str, Any]:
        return {"id": self._id("evt"), "object": "event", "api_version": API_VERSION, "created": now,
                "type": kind, "livemode": False, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None}, "data": {"object": obj}}

    def subscriptions(self) -> DemoSubscriptions:
        """The run's subscription events, sharing its ids, envelopes and customers."""
        return DemoSubscriptions(self.rng, new_id=self._id, envelope=self._event, customer=self._customer)

    def sale(self, now: int) -> dict[str, Any]:
        """checkout.session.completed for a paid one-off purchase."""
        product, amount, currency = self._basket()
        email, name = self._customer()
        intent = self._id("pi")
        metadata = {"product_name": product}
        if self.rng.random() < AFFILIATE_SHARE:
            metadata["affiliate_id"] = self.rng.choice(AFFILIATES)
        self.sales.append(Sale(intent, amount, currency, email, name, product))
        del self.sales[:-REFUNDABLE]
        return self._event("checkout.session.completed", {
            "id": self._id("cs_test"), "object": "checkout.session", "mode": "payment", "status": "complete",
            "payment_status": "paid", "amount_subtotal": amount, "amount_total": amount,
            "currency": currency.lower(), "customer_details": {"email": email, "name": name},
            "customer_email": None, "payment_intent": intent, "metadata": metadata,
            "created": now - self.rng.randint(40, 600), "livemode": False}, now)

    def failure(self, now: int) -> dict[str, Any]:
        """payment_intent.payment_failed: a declined card."""
        product, amount, currency = self._basket()
        email, name = self._customer()
        code = self.rng.choice(list(DECLINES))
        return self._event("payment_intent.payment_failed", {
            "id": self._id("pi"), "object": "payment_intent", "amount": amount, "currency": currency.lower(),
            "status": "requires_payment_method", "receipt_email": email, "description": product,
            "metadata": {"product_name": product}, "created": now - self.rng.randint(5, 60), "livemode": False,
            "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": code,
                                   "message": DECLINES[code], "charge": self._id("ch"),
                                   "payment_method": {"billing_details": {"email": email, "name": name}}}}, now)

    def refund(self, now: int) -> dict[str, Any] | None:
        """charge.refunded, in full, for one of this run's earlier sales (None before the first sale)."""
        if not self.sales:
            return None
        sale = self.sales.pop(self.rng.randrange(len(self.sales)))
        return self._event("charge.refunded", {
            "id": self._id("ch"), "object": "charge", "amount": sale.amount, "amount_captured": sale.amount,
            "amount_refunded": sale.amount, "currency": sale.currency.lower(), "refunded": True, "paid": True,
            "payment_intent": sale.payment_intent, "receipt_email": sale.email,
            "billing_details": {"email": sale.email, "name": sale.name}, "description": sale.product,
            "metadata": {"product_name": sale.product}, "created": now - self.rng.randint(600, 3600),
            "livemode": False}, now)
