"""The demo store's subscriptions: live Stripe events for the simulator, and 30 days of history for the seed.

Live: a new subscriber (customer.subscription.created, then its first invoice.paid — the sale), renewals
(invoice.paid subscription_cycle and the period's customer.subscription.updated), a renewal declined
(invoice.payment_failed and its PaymentIntent's failure, which tells why), plan changes, cancellations
scheduled at period end and churn (customer.subscription.deleted), shaped as the demo's API version sends them
(2024-06-20: the period on the Subscription). History: the same kinds of change as ledger snapshots and states.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from bot.money import format_money

# (name, monthly or yearly price per currency, interval, seats drawn from)
PLANS: Final = (
    ("Pro monthly", {"USD": 1900, "EUR": 1700, "GBP": 1500, "JPY": 2980}, "month", (1, 1)),
    ("Team monthly", {"USD": 2900, "EUR": 2700, "GBP": 2300, "JPY": 4480}, "month", (2, 6)),
    ("Pro yearly", {"USD": 19000, "EUR": 17000, "GBP": 15000, "JPY": 29800}, "year", (1, 1)),
)
SUB_CURRENCIES: Final = {"USD": 80, "EUR": 12, "GBP": 8}
RENEWAL_DECLINES: Final = (("insufficient_funds", "Your card has insufficient funds."),
                           ("expired_card", "Your card has expired."))
MONTH: Final = 30 * 86_400


@dataclass(frozen=True, slots=True)
class DemoSubscription:
    """A subscription the simulator keeps alive between its events."""

    id: str
    customer: str
    email: str
    name: str
    plan: int
    quantity: int
    currency: str
    started: int
    period_start: int
    cancel_scheduled: bool = False

    @property
    def unit_amount(self) -> int:
        return PLANS[self.plan][1][self.currency]

    def item(self) -> dict[str, Any]:
        """The subscription item as Stripe sends it."""
        name, _, interval, _ = PLANS[self.plan]
        return {"id": f"si_{self.id[4:]}_{self.plan}", "object": "subscription_item", "quantity": self.quantity,
                "price": {"id": f"price_demo_{self.plan}_{self.currency.lower()}", "object": "price",
                          "nickname": name, "unit_amount": self.unit_amount, "currency": self.currency.lower(),
                          "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}}

    def period_end(self) -> int:
        return self.period_start + (12 * MONTH if PLANS[self.plan][2] == "year" else MONTH)

    def object(self, *, status: str = "active", ended: int | None = None) -> dict[str, Any]:
        """The Subscription object (the 2024-06-20 shape: the period on the subscription)."""
        return {"id": self.id, "object": "subscription", "customer": self.customer, "status": status,
                "currency": self.currency.lower(), "created": self.started, "start_date": self.started,
                "current_period_start": self.period_start, "current_period_end": self.period_end(),
                "cancel_at_period_end": self.cancel_scheduled,
                "cancel_at": self.period_end() if self.cancel_scheduled else None,
                "canceled_at": ended, "ended_at": ended, "discount": None, "discounts": [], "livemode": False,
                "metadata": {}, "trial_end": None,
                "items": {"object": "list", "data": [self.item()], "has_more": False}}


class DemoSubscriptions:
    """Makes the subscription events of one demo run, with ids and envelopes from the run's EventFactory."""

    def __init__(self, rng: random.Random, *, new_id: Callable[[str], str],
                 envelope: Callable[[str, dict[str, Any], int], dict[str, Any]],
                 customer: Callable[[], tuple[str, str]]) -> None:
        self.rng, self._id, self._event, self._customer = rng, new_id, envelope, customer
        self.live: list[DemoSubscription] = []

    def step(self, now: int) -> list[dict[str, Any]]:
        """One subscription change: mostly new subscribers and renewals, some plan changes, cancellations, churn."""
        roll = self.rng.random()
        if not self.live or roll < 0.4:
            return self.new(now)
        i = self.rng.randrange(len(self.live))
        if roll < 0.6:
            return self.renewal(i, now)
        if roll < 0.65:
            return self.renewal_declined(i, now)
        if roll < 0.8:
            return self.plan_change(i, now)
        if roll < 0.9 and not self.live[i].cancel_scheduled:
            return self.cancel(i, now)
        return self.churn(i, now)

    def new(self, now: int) -> list[dict[str, Any]]:
        """customer.subscription.created, then the first invoice's invoice.paid (the sale ping)."""
        email, name = self._customer()
        plan = self.rng.choices(range(len(PLANS)), weights=(60, 25, 15))[0]
        currency = self.rng.choices(list(SUB_CURRENCIES), weights=list(SUB_CURRENCIES.values()))[0]
        sub = DemoSubscription(self._id("sub"), self._id("cus"), email, name, plan,
                               self.rng.randint(*PLANS[plan][3]), currency, now - 2, now - 2)
        self.live.append(sub)
        return [self._event("customer.subscription.created", sub.object(), now - 1),
                self._invoice(sub, "subscription_create", now)]

    def renewal(self, i: int, now: int) -> list[dict[str, Any]]:
        """The next period: its invoice.paid (subscription_cycle) and the subscription's updated period."""
        old = self.live[i]
        sub = self.live[i] = replace(old, period_start=old.period_end())
        return [self._invoice(sub, "subscription_cycle", now),
                self._updated(sub, now, {"current_period_start": old.period_start,
                                         "current_period_end": old.period_end()})]

    def renewal_declined(self, i: int, now: int) -> list[dict[str, Any]]:
        """A renewal the card did not pay: invoice.payment_failed, which gives no reason, then its PaymentIntent's
        failure, which gives the bank's (the ping shows it)."""
        sub = self.live[i]
        amount, invoice, intent = sub.unit_amount * sub.quantity, self._id("in"), self._id("pi")
        code, reason = self.rng.choice(RENEWAL_DECLINES)
        return [self._event("invoice.payment_failed", {
                    "id": invoice, "object": "invoice", "status": "open", "amount_due": amount, "amount_paid": 0,
                    "attempt_count": 1, "currency": sub.currency.lower(), "customer": sub.customer,
                    "customer_email": sub.email, "customer_name": sub.name, "billing_reason": "subscription_cycle",
                    "subscription": sub.id, "payment_intent": intent, "charge": None, "created": now - 1,
                    "livemode": False, "lines": {"object": "list", "data": [
                        {"description": f"{sub.quantity} × {PLANS[sub.plan][0]}", "amount": amount}]}}, now),
                self._event("payment_intent.payment_failed", {
                    "id": intent, "object": "payment_intent", "amount": amount, "currency": sub.currency.lower(),
                    "status": "requires_payment_method", "customer": sub.customer, "invoice": invoice,
                    "description": "Subscription update", "receipt_email": sub.email, "created": now - 1,
                    "livemode": False, "last_payment_error": {
                        "type": "card_error", "code": "card_declined", "decline_code": code, "message": reason,
                        "charge": self._id("ch")}}, now + 1)]

    def plan_change(self, i: int, now: int) -> list[dict[str, Any]]:
        """An upgrade or downgrade: another plan, or more or fewer seats."""
        old = self.live[i]
        plan = (old.plan + self.rng.choice((1, 2))) % len(PLANS)
        sub = self.live[i] = replace(old, plan=plan, quantity=self.rng.randint(*PLANS[plan][3]))
        return [self._updated(sub, now, {"items": {"object": "list", "data": [old.item()], "has_more": False}})]

    def cancel(self, i: int, now: int) -> list[dict[str, Any]]:
        """The customer cancels at period end: still paying until then."""
        sub = self.live[i] = replace(self.live[i], cancel_scheduled=True)
        return [self._updated(sub, now, {"cancel_at_period_end": False, "cancel_at": None})]

    def churn(self, i: int, now: int) -> list[dict[str, Any]]:
        """customer.subscription.deleted: the subscription ended."""
        sub = self.live.pop(i)
        return [self._event("customer.subscription.deleted", sub.object(status="canceled", ended=now), now)]

    def _updated(self, sub: DemoSubscription, now: int, previous: dict[str, Any]) -> dict[str, Any]:
        event = self._event("customer.subscription.updated", sub.object(), now)
        event["data"]["previous_attributes"] = previous
        return event

    def _invoice(self, sub: DemoSubscription, reason: str, now: int) -> dict[str, Any]:
        name, _, interval, _ = PLANS[sub.plan]
        amount = sub.unit_amount * sub.quantity
        line = f"{sub.quantity} × {name} (at {format_money(sub.unit_amount, sub.currency)} / {interval})"
        return self._event("invoice.paid", {
            "id": self._id("in"), "object": "invoice", "status": "paid", "amount_paid": amount,
            "currency": sub.currency.lower(), "customer": sub.customer, "customer_email": sub.email,
            "customer_name": sub.name, "billing_reason": reason, "subscription": sub.id,
            "payment_intent": self._id("pi"), "charge": self._id("ch"), "created": now - 1, "livemode": False,
            "lines": {"object": "list", "data": [{"description": line, "amount": amount}]}}, now)
