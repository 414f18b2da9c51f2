"""/api/monitoring/sales: `today` and `hourlySales[]` carry the same store-currency figures (fees, net). A fully
refunded order keeps its fee against `today`'s net, but its hour, with no completed order left, is dropped from
hourlySales, so the hours no longer add up to the day."""

from __future__ import annotations

from bot.stripe.settle_job import SettlementJob
from tests.conftest import Bot
from tests.fake_stripe import FakeStripe
from tests.settled_store import TOKEN, refund_sale_2, sell

pytest_plugins = ["tests.settled_store"]


async def test_hourly_fees_add_up_to_todays(store: Bot, stripe_api: FakeStripe) -> None:
    await sell(store, 2)
    job = SettlementJob(store.deps)
    assert await job.tick() == 1
    assert (await store.stripe(refund_sale_2(stripe_api, amount=4500, settled=4871))).status == 200
    assert await job.tick() == 1
    resp = await store.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    body = await resp.json()
    assert body["today"]["fees"] == 171 and body["today"]["revenue_net"] == -171, body["today"]
    hours = body["hourlySales"]
    assert sum(h.get("fees") or 0 for h in hours) == body["today"]["fees"], hours
    assert sum(h.get("revenue_net") or 0 for h in hours) == body["today"]["revenue_net"], hours
