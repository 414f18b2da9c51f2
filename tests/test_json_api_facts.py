"""Facts /sales, /health and the dashboard show that the JSON API lacked (each test seen failing before its fix):
the store-currency orders settled in another currency whose fees never come ("fees of 1 order settled in another
currency unknown"), the Stripe jobs a restricted key is refused with the permission each needs, and a missing
Slack team:read on Enterprise Grid."""

from __future__ import annotations

from typing import Any

from bot.affiliation import TEAM_READ_MISSING, Affiliation, Org
from bot.stripe.open_checkouts import OpenCheckoutsJob
from bot.stripe.settle_job import SettlementJob
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.settled_store import TOKEN, keyed_store, sell
from tests.test_slack_connect import grid_slack  # noqa: F401  # a fixture
from tests.test_tiered_prices_mrr import NOW

pytest_plugins = ["tests.settled_store"]  # the `stripe_api` fixture


async def api(bot: Bot, what: str) -> dict[str, Any]:
    """GET /api/monitoring/<what>, as a monitoring dashboard reads it."""
    resp = await bot.client.get(f"/api/monitoring/{what}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_sales_json_counts_store_currency_orders_whose_fees_never_come(
        dsn: str, fake_slack: FakeSlack, stripe_api: FakeStripe) -> None:
    """Figures read in USD, then STORE_CURRENCY=EUR: the €45.00 order counts at face value, its fee never known —
    /sales says "fees of 1 order settled in another currency unknown"; the JSON gives the count beside the fees."""
    async with keyed_store(dsn, fake_slack, stripe_api) as bot:
        await sell(bot, 1, 2, 3, 4)
        assert await SettlementJob(bot.deps).tick() == 4
        before = await api(bot, "sales")
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe_api.url,
                         STORE_CURRENCY="EUR", MONITORING_TOKEN=TOKEN) as bot:
        await SettlementJob(bot.deps).tick()
        text = str((await bot.command("/sales"))["blocks"])
        body = await api(bot, "sales")
    assert "fees of 1 order settled in another currency unknown" in text, text
    assert before["today"]["fees_unknown_orders"] == 0, before["today"]
    today = body["today"]
    assert (today["currency"], today["revenue"], today["fees"], today["fees_pending_orders"],
            today["fees_unknown_orders"]) == ("EUR", 4500, 0, 0, 1), today
    assert sum(h["fees_unknown_orders"] for h in body["hourlySales"]) == 1, body["hourlySales"]


async def test_health_json_names_the_stripe_jobs_refused_and_the_permission_each_needs(
        dsn: str, fake_slack: FakeSlack) -> None:
    """A restricted key without Account: read and Checkout Sessions: read: /health and the dashboard name both jobs;
    the JSON lists them with the permission, Slack's own advice and since when, and empties once Stripe answers."""
    clock = FakeClock(NOW)
    async with FakeStripe(forbidden={"/v1/account", "/v1/checkout/sessions"}) as stripe, \
            start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe.url,
                      MONITORING_TOKEN=TOKEN) as bot:
        fees, checkouts = SettlementJob(bot.deps), OpenCheckoutsJob(bot.deps)
        await fees.tick()
        await checkouts.tick()
        advice = {r.job: r.advice for r in bot.deps.refusals.standing()}
        shown = await api(bot, "health")
        stripe.forbidden.clear()
        clock.advance(hours=1, minutes=1)
        await fees.tick()
        await checkouts.tick()
        after = await api(bot, "health")
    refused = {r["job"]: r for r in shown["components"]["stripe_refusals"]}
    assert set(refused) == {"Stripe fees", "Stripe open checkouts"}, refused
    fees_r, checkouts_r = refused["Stripe fees"], refused["Stripe open checkouts"]
    assert (fees_r["status"], fees_r["permission"], fees_r["level"]) == (403, "Account: read", "warn"), fees_r
    assert checkouts_r["permission"] == "Checkout Sessions: read", checkouts_r
    assert fees_r["advice"] == advice["Stripe fees"] and "STORE_CURRENCY" in fees_r["advice"], fees_r
    assert fees_r["since"] == NOW.isoformat().replace("+00:00", "Z"), fees_r
    assert after["components"]["stripe_refusals"] == []


async def test_health_json_says_team_read_is_missing_on_grid(
        dsn: str, grid_slack: FakeSlack) -> None:  # noqa: F811  # the fixture imported above
    """team.info refused for want of team:read: /health and the dashboard say so in one line; so does the JSON."""
    grid_slack.fail_next(1, error="missing_scope", method="team.info")
    async with start_bot(dsn, grid_slack, MONITORING_TOKEN=TOKEN) as bot:
        before = await api(bot, "health")
        sister = Affiliation(actor=Org(team_id="T0SISTER"), installation=Org(team_id="T000", enterprise_id="E000"))
        assert await bot.deps.access.outsider(sister)
        shown = await api(bot, "health")
    assert before["components"]["slack_app"] == {"team_read_missing": False, "problem": None, "level": None}
    assert shown["components"]["slack_app"] == {"team_read_missing": True, "problem": TEAM_READ_MISSING,
                                                "level": "bad"}, shown["components"]
