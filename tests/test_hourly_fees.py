"""/api/monitoring/sales: `today` and `hourlySales[]` carry the same store-currency figures (fees, net). A fully
refunded order keeps its fee against `today`'s net, but its hour, with no completed order left, is dropped from
hourlySales, so the hours no longer add up to the day."""

from __future__ import annotations

import time

from bot.stripe.settle_job import SettlementJob
from tests.conftest import Bot
from tests.fake_stripe import FakeStripe
from tests.reference import stripe_fixture, wrap_event
from tests.settled_store import TOKEN, balance_transaction, resource, sell

pytest_plugins = ["tests.settled_store"]


async def test_hourly_fees_add_up_to_todays(store: Bot, stripe_api: FakeStripe) -> None:
    await sell(store, 2)
    job = SettlementJob(store.deps)
    assert await job.tick() == 1
    refund = resource("refund")
    refund.update(id="re_2", amount=4500, currency="eur", charge="ch_2", balance_transaction="txn_re_2")
    stripe_api.charges["ch_2"]["refunds"]["data"].append(refund)
    stripe_api.balance_transactions["txn_re_2"] = balance_transaction("txn_re_2", amount=-4871, fee=0,
                                                                      source="re_2", type_="refund")
    refunded = stripe_fixture("pay-rails/charge.refunded.json")
    refunded["object"].update(id="ch_2", payment_intent="pi_2", amount=4500, amount_captured=4500,
                              amount_refunded=4500, currency="eur", refunded=True)
    assert (await store.stripe(wrap_event(refunded, "charge.refunded", created=int(time.time())))).status == 200
    assert await job.tick() == 1
    resp = await store.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    body = await resp.json()
    assert body["today"]["fees"] == 171 and body["today"]["revenue_net"] == -171, body["today"]
    hours = body["hourlySales"]
    assert sum(h.get("fees") or 0 for h in hours) == body["today"]["fees"], hours
    assert sum(h.get("revenue_net") or 0 for h in hours) == body["today"]["revenue_net"], hours
