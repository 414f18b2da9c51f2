"""A payment whose first try was declined and a later one paid (a second card on the same checkout, a subscription
renewal paid on a dunning retry): its fees come from the charge that paid, never the declined one, which Stripe
never settles (found by a review helper)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.stripe.settle_job import SettlementJob
from tests.conftest import Bot
from tests.fake_stripe import FakeStripe
from tests.reference import failed_payment, stripe_fixture
from tests.settled_store import balance_transaction, resource

pytest_plugins = ["tests.settled_store"]  # the `stripe_api` and `store` fixtures


def charges(stripe_api: FakeStripe, intent: str, *, declined: str, paid: str, amount: int, fee: int) -> None:
    """Stripe's side: the declined charge (no balance transaction, ever) and the one that paid, on one intent."""
    for charge_id, ok in ((declined, False), (paid, True)):
        charge = resource("charge")
        charge.update(id=charge_id, amount=amount, currency="usd", payment_intent=intent, paid=ok,
                      status="succeeded" if ok else "failed", captured=ok,
                      balance_transaction=f"txn_{charge_id}" if ok else None,
                      refunds={"object": "list", "data": [], "has_more": False,
                               "url": f"/v1/charges/{charge_id}/refunds"})
        stripe_api.charges[charge_id] = charge
    stripe_api.balance_transactions[f"txn_{paid}"] = balance_transaction(f"txn_{paid}", amount=amount, fee=fee,
                                                                          source=paid)


async def settled(store: Bot, where: str) -> tuple[Any, ...]:
    """Run the fees job once (it must read one order) and return that order's settled amount, fee and net."""
    assert await SettlementJob(store.deps).tick() == 1
    sql = f"SELECT settled_amount, fee, net FROM orders WHERE {where}"  # `where`: this module's own fixed text
    row = await store.deps.pool.fetchrow(sql)
    return tuple(row)


async def test_a_second_card_on_the_same_intent_gets_its_fees_from_the_charge_that_paid(
        store: Bot, stripe_api: FakeStripe) -> None:
    """The order first named the declined charge; the fees job follows the PaymentIntent to its latest charge."""
    now = int(time.time())
    charges(stripe_api, "pi_retry", declined="ch_retry", paid="ch_ok", amount=4900, fee=172)
    stripe_api.intents.append({"id": "pi_retry", "object": "payment_intent", "amount": 4900, "currency": "usd",
                               "status": "succeeded", "created": now, "latest_charge": "ch_ok"})
    failed = failed_payment("evt_retry_failed", "pi_retry", amount=4900, currency="usd", created=now - 120)
    assert (await store.stripe(failed)).status == 200
    succeeded = stripe_fixture("versions/acacia/one_off/payment_intent.succeeded.json")
    succeeded.update(id="evt_retry_ok", created=now - 60)
    succeeded["data"]["object"].update(id="pi_retry", latest_charge="ch_ok", amount=4900, amount_received=4900,
                                       currency="usd", created=now - 130)
    assert (await store.stripe(succeeded)).status == 200
    await store.drain()
    assert await settled(store, "payment_intent_id = 'pi_retry'") == (4900, 172, 4900 - 172)


@pytest.mark.parametrize("paid_first", [False, True])
async def test_a_renewal_paid_on_a_dunning_retry_names_and_settles_the_charge_that_paid(
        store: Bot, stripe_api: FakeStripe, paid_first: bool) -> None:
    """Before basil an invoice names its latest charge: once paid, the retry's. The order takes the charge of the
    event that paid it, in either order of arrival, so the fees come from there (no PaymentIntent to fall back on)."""
    now = int(time.time())
    charges(stripe_api, "pi_dun", declined="ch_dun_fail", paid="ch_dun_ok", amount=2000, fee=88)
    failed = stripe_fixture("stripe-ruby-mock/invoice.payment_failed.json")
    failed.update(id="evt_dun_failed", created=now - 3600)
    failed["data"]["object"].update(id="in_dun", charge="ch_dun_fail", payment_intent="pi_dun")
    paid = stripe_fixture("stripe-ruby-mock/invoice.paid.json")
    paid.update(id="evt_dun_paid", created=now - 60)
    paid["data"]["object"].update(id="in_dun", charge="ch_dun_ok", payment_intent="pi_dun")
    for event in ([paid, failed] if paid_first else [failed, paid]):
        assert (await store.stripe(event)).status == 200
    await store.drain()
    assert await store.deps.pool.fetchval("SELECT charge_id FROM orders WHERE invoice_id = 'in_dun'") == "ch_dun_ok"
    assert await settled(store, "invoice_id = 'in_dun'") == (2000, 88, 2000 - 88)
