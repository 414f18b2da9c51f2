"""A store selling in four currencies, and Stripe's side of its sales as Stripe's API returns it: PaymentIntents,
Charges and their balance transactions (stripe/openapi fixtures3.json), served by tests/fake_stripe.py.

Use: `pytest_plugins = ["tests.settled_store"]` in the test module for the `stripe_api` and `store` fixtures."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.currency import StoreTotals, store_totals
from queries import settlements
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.reference import stripe_fixture, wrap_event

TOKEN = "monitoring-token-for-currency-tests"
# Four sales in four currencies and what the account (USD) settled for each: (currency, amount, settled, fee).
SALES = {1: ("usd", 3000, 3000, 117), 2: ("eur", 4500, 4871, 171), 3: ("jpy", 2980, 2010, 88),
         4: ("gbp", 7800, 9850, 316)}


def resource(name: str) -> dict[str, Any]:
    """An object as Stripe's API returns it (stripe/openapi fixtures3.json), to patch."""
    return copy.deepcopy(stripe_fixture("openapi/fixtures3.json")["resources"][name])


def balance_transaction(txn_id: str, *, amount: int, fee: int, source: str, type_: str = "charge",
                        currency: str = "usd", rate: float | None = None) -> dict[str, Any]:
    """A BalanceTransaction: amount and fee in the account's currency, net = amount − fee."""
    txn = resource("balance_transaction")
    details = [{"amount": fee, "application": None, "currency": currency, "description": "Stripe processing fees",
                "type": "stripe_fee"}] if fee else []
    txn.update(id=txn_id, amount=amount, fee=fee, net=amount - fee, currency=currency, source=source, type=type_,
               exchange_rate=rate, fee_details=details, reporting_category=type_)
    return txn


def refund_sale_2(stripe: FakeStripe, *, amount: int, settled: int, rate: float | None = None,
                  event_id: str = "evt_re_2") -> dict[str, Any]:
    """`amount` cents of sale 2's €45.00 refunded on Stripe's side, its balance transaction taking `settled` US cents
    (at `rate`); the charge.refunded event that tells the bot."""
    refund = resource("refund")
    refund.update(id="re_2", amount=amount, currency="eur", charge="ch_2", balance_transaction="txn_re_2")
    stripe.charges["ch_2"]["refunds"]["data"].append(refund)
    stripe.balance_transactions["txn_re_2"] = balance_transaction("txn_re_2", amount=-settled, fee=0, source="re_2",
                                                                  type_="refund", rate=rate)
    refunded = stripe_fixture("pay-rails/charge.refunded.json")  # the event's `data`
    refunded["object"].update(id="ch_2", payment_intent="pi_2", amount=4500, amount_captured=4500,
                              amount_refunded=amount, currency="eur", refunded=amount == 4500)
    return wrap_event(refunded, "charge.refunded", event_id=event_id, created=int(time.time()))


def serve_sale(stripe: FakeStripe, n: int) -> None:
    """Stripe's side of sale n: its PaymentIntent, Charge and the charge's balance transaction."""
    currency, amount, settled, fee = SALES[n]
    charge = resource("charge")
    charge.update(id=f"ch_{n}", amount=amount, currency=currency, payment_intent=f"pi_{n}", paid=True,
                  balance_transaction=f"txn_{n}", refunds={"object": "list", "data": [], "has_more": False,
                                                           "url": f"/v1/charges/ch_{n}/refunds"})
    stripe.charges[charge["id"]] = charge
    stripe.intents.append({"id": f"pi_{n}", "object": "payment_intent", "amount": amount, "currency": currency,
                           "status": "succeeded", "created": 1, "latest_charge": f"ch_{n}"})
    stripe.balance_transactions[f"txn_{n}"] = balance_transaction(
        f"txn_{n}", amount=settled, fee=fee, source=f"ch_{n}", rate=None if currency == "usd" else 1.08)


@contextlib.asynccontextmanager
async def stripe_with_sales() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API with the four sales' charges."""
    async with FakeStripe() as fake:
        for n in SALES:
            serve_sale(fake, n)
        yield fake


@contextlib.asynccontextmanager
async def keyed_store(dsn: str, slack: FakeSlack, stripe: FakeStripe) -> AsyncIterator[Bot]:
    """A store with STRIPE_API_KEY pointing at the fake, STORE_CURRENCY unset (the account's default: USD)."""
    async with start_bot(dsn, slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe.url,
                         MONITORING_TOKEN=TOKEN) as bot:
        yield bot


async def sell(bot: Bot, *numbers: int) -> dt.datetime:
    """Post the sales' checkout.session.completed webhooks (all 200); when they happened."""
    now = dt.datetime.now(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    at = max(now - dt.timedelta(minutes=30), midnight + (now - midnight) / 2)  # today (UTC), in the past
    for n in numbers:
        currency, amount, _, _ = SALES[n]
        resp = await bot.stripe(paid_checkout(n, at, amount=amount, currency=currency))
        assert resp.status == 200, await resp.text()
    return at


async def totals(bot: Bot, at: dt.datetime, currency: str = "USD") -> StoreTotals:
    """The day around `at` in the store currency, from the rollups."""
    rows = await settlements.settled_totals(bot.deps.pool, start=at - dt.timedelta(days=1),
                                            end=at + dt.timedelta(days=1))
    return store_totals(rows, currency)


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API with the four sales' charges."""
    async with stripe_with_sales() as fake:
        yield fake


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack, stripe_api: FakeStripe) -> AsyncIterator[Bot]:
    """A store with STRIPE_API_KEY pointing at the fake (the account's currency: USD)."""
    async with keyed_store(dsn, fake_slack, stripe_api) as bot:
        yield bot


async def lose_dispute(bot: Bot, stripe: FakeStripe) -> None:
    """Sale 4 (£78, settled $98.50) disputed and lost: $98.50 withdrawn and a $15.00 dispute fee, as Stripe's API and
    a charge.dispute.created event tell it (the store reads its figures again at its next fees run)."""
    withdrawal = stripe_fixture("stripe-ruby-mock/charge.dispute.funds_withdrawn.json")["data"]["object"]
    lost = {**withdrawal["balance_transactions"][0], "amount": -9850, "net": -11350}  # fee 1500: the dispute fee
    dispute = {**withdrawal, "id": "dp_4", "charge": "ch_4", "payment_intent": "pi_4", "amount": 7800,
               "currency": "gbp", "balance_transactions": [lost]}
    stripe.disputes.append({**dispute, "created": int(time.time())})
    stripe.charges["ch_4"]["disputed"] = True
    created = {**stripe_fixture("stripe-ruby-mock/charge.dispute.created.json"), "id": "evt_dp_4",
               "created": int(time.time())}
    created["data"]["object"] = {**dispute, "balance_transactions": []}
    assert (await bot.stripe(created)).status == 200
