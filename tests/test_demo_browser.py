"""The demo store as its owner sees it in Chromium: four currencies totalled in the store currency, net of
fees, and subscriptions with MRR, on the dashboard and in the local feed's /sales 30d. Screenshots land in
docs/screenshots/ for the README (`make screenshots`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.demo.runner import DEMO_CURRENCY, seed_history
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack

pytest_plugins = ["tests.browser"]  # the `chromium` and `screenshot` fixtures
pytestmark = pytest.mark.browser
TOKEN = "demo-dashboard-token-long-enough"


@pytest.fixture
async def demo_store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A local-mode bot over the demo's 30 days of history (orders settled in USD, subscriptions), at yesterday's
    noon: run minutes after midnight, "today" held no sale yet and the dashboard rightly showed no net for it."""
    noon = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    async with start_bot(dsn, fake_slack, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None, MONITORING_TOKEN=TOKEN,
                         STORE_CURRENCY=DEMO_CURRENCY, clock=lambda: noon) as bot:
        await seed_history(dsn, bot.deps.settings, orders=3_000, now=noon)
        yield bot


async def test_the_demo_dashboard_shows_one_currency_net_and_mrr(demo_store: Bot, chromium: Any,
                                                                 screenshot: Any) -> None:
    """Signed in, the phone dashboard gives today's revenue in USD with its net and the other currencies beside
    it, and an MRR card; the numbers are the API's."""
    context = await chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = await context.new_page()
    await page.goto(str(demo_store.client.make_url("/dashboard")))
    await page.fill("#token", TOKEN)
    await page.click("#signin button[type=submit]")
    await page.locator("#dash").wait_for(state="visible")
    resp = await demo_store.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    api = await resp.json()
    assert api["today"]["store_currency"] == "USD" and api["subscriptions"]["currency"] == "USD"
    assert (await page.locator("#today-revenue").inner_text()).startswith("$")
    assert "net" in (await page.locator("#today-net").inner_text()).lower()
    await page.locator("#mrr-card").wait_for(state="visible")
    assert (await page.locator("#mrr").inner_text()).startswith("$")
    await screenshot(page, "dashboard-demo.png", full_page=True)
    await context.close()


async def test_the_demo_feed_answers_sales_30d_in_the_store_currency(demo_store: Bot, chromium: Any,
                                                                     screenshot: Any) -> None:
    """/sales 30d typed in the feed: revenue and net in USD, the per-currency breakdown, and MRR."""
    from playwright.async_api import expect

    context = await chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = await context.new_page()
    await page.goto(str(demo_store.client.make_url("/")))
    await page.locator("#status.live").wait_for()
    await page.fill("#command", "/sales 30d")
    await page.press("#command", "Enter")
    reply = page.locator("article.ephemeral")
    await expect(reply).to_contain_text("Last 30 days")
    shown = await reply.inner_text()
    assert "Net:" in shown and "By currency:" in shown and "MRR $" in shown, shown
    await screenshot(page, "feed-demo-sales.png")
    await context.close()
