"""The local feed in headless Chromium against a bot in local mode: pings appear live after a signed Stripe
event, the command box answers /sales, and the buttons act (Share, Acknowledge). Screenshots land in
docs/screenshots/ for the README."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from bot.alerts.engine import evaluate
from bot.alerts.respond import notifier_for
from bot.alerts.rules import Context
from tests.conftest import STRIPE_SECRET, Bot, paid_checkout
from tests.reference import failed_payment as declined

Shot = Callable[..., Awaitable[Any]]

pytest_plugins = ["tests.browser"]  # the `chromium` and `screenshot` fixtures
pytestmark = pytest.mark.browser
DESKTOP = {"viewport": {"width": 1280, "height": 820}}


def failed_payment(n: int) -> dict[str, Any]:
    """A real payment_intent.payment_failed event, made unique and recent."""
    evt = declined(f"evt_fail_{n}", f"pi_fail_{n}")
    evt["created"] = int(dt.datetime.now(dt.UTC).timestamp())
    return evt


async def open_feed(bot: Bot, browser: Any, fragment: str = "") -> Any:
    """A page on the feed, connected to its event stream."""
    page = await (await browser.new_context(**DESKTOP)).new_page()
    await page.goto(str(bot.client.make_url("/")) + fragment)
    await page.locator("#status.live").wait_for()
    return page


async def test_ping_appears_live_and_the_command_box_answers(local_bot: Bot, chromium: Any, screenshot: Shot) -> None:
    """A signed sale shows up in #sales-notifications without a reload; `/sales` typed in the box answers
    privately, and Share posts the answer in the channel."""
    from playwright.async_api import expect

    page = await open_feed(local_bot, chromium)
    assert await page.locator("#channel-name").inner_text() == "#sales-notifications"
    now = dt.datetime.now(dt.UTC)
    sale = paid_checkout(1, now, amount=19900, email="ada@example.com", product="Pro Course")
    assert (await local_bot.stripe(sale)).status == 200
    ping = page.locator(".pane[data-channel=sales] article.msg")
    await expect(ping).to_have_count(1)
    text = await ping.inner_text()
    assert "New Sale!" in text and "$199.00" in text and "Pro Course" in text and "pi_1" in text
    assert "ada@example.com" not in text  # masked, as in Slack

    await page.fill("#command", "/sales")
    await page.press("#command", "Enter")
    reply = page.locator("article.ephemeral")
    await expect(reply).to_contain_text("Only visible to you · /sales")
    assert re.search(r"Orders:\s*1\b", await reply.inner_text()), await reply.inner_text()
    assert "$199.00" in await reply.inner_text()
    await screenshot(page, "feed-sales-command.png")

    await reply.locator("button[data-action-id=share_in_channel]").click()
    await expect(reply).to_have_count(0)  # the private answer gives way to the shared one
    await expect(ping).to_have_count(2)
    assert "Shared by @you with /sales" in await ping.nth(1).inner_text()
    await page.context.close()


async def test_alert_buttons_update_the_message_in_place(local_bot: Bot, chromium: Any, screenshot: Shot) -> None:
    """Three declined cards fire the warning in #system-alerts; Acknowledge edits that same message."""
    from playwright.async_api import expect

    for n in range(3):
        assert (await local_bot.stripe(failed_payment(n))).status == 200
    deps = local_bot.deps
    ctx = Context(now=deps.clock(), tz=deps.settings.tz, business_hours=deps.settings.business_hours, site_url=None)
    async with deps.pool.acquire() as conn:
        assert await evaluate(conn, rules=deps.rules, ctx=ctx, notifier=notifier_for(deps)) >= 1
    page = await open_feed(local_bot, chromium, "#alerts")
    alert = page.locator(".pane[data-channel=alerts] article.msg", has_text="WARNING · Payment failures")
    await expect(alert).to_have_count(1, timeout=15_000)  # delivery is woken by NOTIFY; CI machines are busy
    await expect(alert.locator("button")).to_have_count(4)
    await alert.locator("button[data-action-id=alert_ack]").click()
    await expect(alert).to_contain_text("Acknowledged by @you")
    await expect(alert.locator(".edited")).to_be_visible()
    await screenshot(page, "feed-alert.png")
    await page.context.close()


async def test_hostile_text_is_shown_not_run(local_bot: Bot, chromium: Any) -> None:
    """A product name full of HTML and Slack markup from a Stripe payload reaches the page as plain text."""
    from playwright.async_api import expect

    page = await open_feed(local_bot, chromium)
    await page.evaluate("window.__owned = false")
    evil = '<img src=x onerror="window.__owned=true"><script>window.__owned=true</script> <!channel>'
    sale = paid_checkout(7, dt.datetime.now(dt.UTC), product=evil)
    assert (await local_bot.stripe(sale)).status == 200
    ping = page.locator(".pane[data-channel=sales] article.msg")
    await expect(ping).to_contain_text('<img src=x onerror="window.__owned=true">')
    assert await ping.locator("img, script").count() == 0
    assert await page.evaluate("window.__owned") is False
    await page.context.close()


async def test_the_demo_store_fills_the_feed(local_bot: Bot, chromium: Any, screenshot: Shot) -> None:
    """The demo simulator's opening — sales, declined cards, a refund and a burst, signed like Stripe — comes
    through the real intake into the feed, the burst as one coalesced message."""
    from playwright.async_api import expect

    from bot.demo.runner import OPENING, Simulator

    simulator = Simulator(url=str(local_bot.client.make_url("/webhooks/stripe")), secret=STRIPE_SECRET,
                          rng=random.Random(7))
    page = await open_feed(local_bot, chromium)
    async with aiohttp.ClientSession() as session:
        for _, kind in OPENING:  # without the pauses; a burst goes out all at once, as in the demo
            statuses = await asyncio.gather(*(simulator.send(session, e) for e in simulator.make(kind)))
            assert set(statuses) == {200}
    sales = page.locator(".pane[data-channel=sales] article.msg")
    await expect(sales.filter(has_text="new sales")).not_to_have_count(0, timeout=30_000)
    await expect(sales.filter(has_text="Refund")).to_have_count(1)
    # The five declined cards, each told once: in a ping of its own, or counted in a summary of several.
    alerts = page.locator(".pane[data-channel=alerts] article.msg")
    for _ in range(300):
        texts = await alerts.all_text_contents()
        told = sum(int(m.group(1).replace(",", "")) if (m := re.search(r"([\d,]+) payment failures", t))
                   else int("Payment Failed" in t) for t in texts)
        if told >= 5:
            break
        await asyncio.sleep(0.1)
    assert told == 5, texts
    await page.locator("#panes").evaluate("box => box.scrollTop = box.scrollHeight")
    await screenshot(page, "feed-demo.png")
    await page.context.close()
