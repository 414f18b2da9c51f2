"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a running bot.

Screenshots land in docs/screenshots/ for the README. Nothing is downloaded: Playwright drives the system
browser (tests/browser.py); without it these tests are skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.money import format_money
from bot.web.mrr_view import mrr_card
from queries.mrr import MrrFigures, MrrSummary
from tests.conftest import Bot, FakeClock, paid_checkout, start_bot
from tests.fakes import FakeSlack

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}

pytest_plugins = ["tests.browser"]  # the `chromium` and `screenshot` fixtures
pytestmark = pytest.mark.browser  # the `chromium` fixture skips, saying why, without /usr/bin/chromium
async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (test extra)")

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 3, 8, 15, 30, tzinfo=NY).astimezone(dt.UTC)
TOKEN = "mon-token-browser-5f0c-long-enough"


def local(*args: int) -> dt.datetime:
    """A New York wall-clock time as UTC."""
    return dt.datetime(*args, tzinfo=NY).astimezone(dt.UTC)


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A New York store through a Sunday afternoon, served on 127.0.0.1."""
    clock = FakeClock(NOW)
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         MONITORING_TOKEN=TOKEN) as bot:
        sales = [(local(2026, 3, 7, 16, 10), 4900), (local(2026, 3, 7, 19, 40), 12900),
                 (local(2026, 3, 7, 21, 5), 2900), (local(2026, 3, 8, 8, 20), 4900), (local(2026, 3, 8, 10, 45), 9900),
                 (local(2026, 3, 8, 11, 5), 4900), (local(2026, 3, 8, 13, 30), 19900),
                 (local(2026, 3, 8, 14, 50), 4900), (local(2026, 3, 8, 15, 12), 9900)]
        sales += [(local(2026, 3, 1, hour, 0), 4900) for hour in (9, 11, 13, 14)]  # a week earlier
        for n, (at, amount) in enumerate(sales, start=1):
            evt = paid_checkout(n, at, amount=amount, email=f"buyer{n}@example.com", product="Course")
            assert (await bot.stripe(evt)).status == 200
        await bot.drain(ignore_pace=True)  # the pings reached Slack: health shows nothing waiting
        await bot.deps.pool.execute(
            "INSERT INTO alerts (fingerprint, rule, family, severity, labels, title, summary, started_at,"
            " last_seen_at) VALUES ('sync', 'sync_failures', 'sync', 'warning', '{}', 'CRM sync failing',"
            " '3 orders not synced to GoHighLevel in 10 min', $1, $1)", NOW - dt.timedelta(minutes=7))
        yield bot


def url(bot: Bot, path: str) -> str:
    """An absolute URL on the running bot."""
    return str(bot.client.make_url(path))


async def api_sales(bot: Bot) -> dict[str, Any]:
    """GET /api/monitoring/sales with the bearer token."""
    resp = await bot.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def text(page: Any, selector: str) -> str:
    """The visible text of one element."""
    return str(await page.locator(selector).inner_text()).strip()


async def test_sign_in_shows_the_api_figures_and_never_the_token(store: Bot, chromium: Any,
                                                                 screenshot: Any) -> None:
    """Type the token once: the page shows /api/monitoring/sales' figures; the token is nowhere in page or URL."""
    context = await chromium.new_context(**PHONE)
    page = await context.new_page()
    await page.goto(url(store, "/dashboard"))
    await page.locator("#signin").wait_for(state="visible")
    await screenshot(page, "dashboard-signin.png")
    await page.fill("#token", TOKEN)
    await page.click("#signin button[type=submit]")
    await page.locator("#dash").wait_for(state="visible")
    api = await api_sales(store)
    assert await text(page, "#today-orders") == str(api["today"]["order_count"]) == "6"
    assert await text(page, "#today-revenue") == format_money(api["today"]["revenue"], "USD") == "$544.00"
    assert await text(page, "#last-hour-orders") == str(api["lastHour"]["order_count"]) == "2"
    assert await text(page, "#pending") == str(api["pendingCheckouts"])
    assert await text(page, "#title") == "Today (Sun 08 Mar)"
    assert await page.locator("#chart rect.bar").count() == 25
    assert await text(page, "#status") == "Live"
    assert await text(page, "#today-vs") == "· orders ▲ 50% vs last Sun"
    assert "CRM sync failing" in await text(page, "#alerts")
    html = await page.content()
    assert TOKEN not in html and TOKEN not in page.url and page.url.endswith("/dashboard")
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script can read the session
    [cookie] = await context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != TOKEN
    await screenshot(page, "dashboard-mobile.png", full_page=True)
    await context.close()


async def test_page_refreshes_itself_after_a_new_sale(store: Bot, chromium: Any) -> None:
    """Signed in by a /sales link, the page picks up a new sale within one 30 s refresh, without reloading."""
    body = await store.command("/sales", "link")
    path = re.search(r"(/dashboard/link/[A-Za-z0-9_.\-]+)", str(body["blocks"]))
    assert path, body
    context = await chromium.new_context(**PHONE)
    page = await context.new_page()
    await page.clock.install()
    await page.goto(url(store, path.group(1)))
    assert page.url.endswith("/dashboard")  # the signed link does not linger in the address bar
    await page.locator("#dash").wait_for(state="visible")
    assert await text(page, "#today-orders") == "6"
    await page.evaluate("window.__sameDocument = true")
    sale = paid_checkout(99, NOW - dt.timedelta(minutes=2), amount=7500, email="new@example.com")
    assert (await store.stripe(sale)).status == 200
    await page.clock.fast_forward(31_000)
    await async_api.expect(page.locator("#today-orders")).to_have_text("7")  # (wait_for_function needs eval)
    assert await text(page, "#today-revenue") == "$619.00"
    assert await text(page, "#last-hour-orders") == "3"
    assert await page.evaluate("window.__sameDocument") is True  # refreshed in place, not reloaded
    await context.close()


async def test_unreachable_server_and_stale_figures_are_shown(store: Bot, chromium: Any,
                                                              screenshot: Any) -> None:
    """When /dashboard/data cannot be reached the page says so, greys out old figures, and recovers."""
    context = await chromium.new_context(**PHONE)
    page = await context.new_page()
    await page.clock.install()
    await page.goto(url(store, "/dashboard"))
    await page.fill("#token", TOKEN)
    await page.click("#signin button[type=submit]")
    await page.locator("#dash").wait_for(state="visible")
    await page.route("**/dashboard/data", lambda route: route.abort("internetdisconnected"))
    await page.clock.fast_forward(31_000)
    await page.locator("#banner").wait_for(state="visible")
    assert "Can't reach the server" in await text(page, "#banner")
    assert await text(page, "#status") == "Offline"
    await page.clock.fast_forward(60_000)
    await async_api.expect(page.locator("#dash")).to_have_class(re.compile(r"\bstale\b"))
    assert await text(page, "#today-orders") == "6"  # the last figures stay, marked as old
    await screenshot(page, "dashboard-offline.png")
    await page.unroute("**/dashboard/data")
    await page.clock.fast_forward(31_000)
    await page.locator("#banner").wait_for(state="hidden")
    assert await text(page, "#status") == "Live"
    await context.close()


async def test_wrong_token_and_signed_out_sessions_show_the_form(store: Bot, chromium: Any,
                                                                 screenshot: Any) -> None:
    """A wrong token shows why; signing out returns to the form (and the data is refused)."""
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(url(store, "/dashboard"))
    await page.fill("#token", "not-it")
    await page.click("#signin button[type=submit]")
    assert "That token is not right." in await text(page, "#signin-notice")
    await page.fill("#token", TOKEN)
    await page.click("#signin button[type=submit]")
    await page.locator("#dash").wait_for(state="visible")
    await screenshot(page, "dashboard-desktop.png", full_page=True)
    await page.click("footer button")
    await page.locator("#signin").wait_for(state="visible")
    assert await context.cookies() == []
    await context.close()


async def signed_in(bot: Bot, browser: Any) -> tuple[Any, Any]:
    """A phone signed in to the dashboard, its figures shown."""
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    await page.goto(url(bot, "/dashboard"))
    await page.fill("#token", TOKEN)
    await page.click("#signin button[type=submit]")
    await page.locator("#dash").wait_for(state="visible")
    await page.wait_for_function("document.getElementById('today-orders').textContent !== '—'")
    return context, page


async def test_today_card_says_one_customer_and_whose_change_it_shows(dsn: str, fake_slack: FakeSlack,
                                                                      chromium: Any) -> None:
    """One customer's two orders today and one a week ago: the Today card reads "1 customer · orders ▲ 100% vs
    last Sun" — not "1 customers", nor the orders' change hung on the customers."""
    async with start_bot(dsn, fake_slack, clock=FakeClock(NOW), STORE_TIMEZONE="America/New_York",
                         MONITORING_TOKEN=TOKEN) as bot:
        for n, at in enumerate((NOW - dt.timedelta(days=7, minutes=1), NOW - dt.timedelta(minutes=3),
                                NOW - dt.timedelta(minutes=2)), start=1):
            assert (await bot.stripe(paid_checkout(n, at, amount=4900, email="same@example.com"))).status == 200
        context, page = await signed_in(bot, chromium)
        line = " ".join((await page.evaluate(
            "document.getElementById('today-customers').parentElement.textContent")).split())
        await context.close()
    assert line == "1 customer · orders ▲ 100% vs last Sun"


DEMO_MRR = MrrSummary(since=NOW - dt.timedelta(days=30), now=NOW, currencies=(
    MrrFigures("USD", 170083, 155900, 90867, 0, 27150, 42333, 25000, 6, 32),
    MrrFigures("EUR", 11917, 10500, 1700, 0, 0, 283, 0, 0, 5),
    MrrFigures("GBP", 7600, 7600, 0, 0, 0, 0, 0, 0, 3)))


async def test_mrr_card_never_splits_a_sign_from_its_amount(store: Bot, chromium: Any, screenshot: Any) -> None:
    """The demo's MRR in three currencies on a 390 px phone: no line ends in "downgrades −" with the amount, read as
    a gain, on the next."""
    context = await chromium.new_context(**PHONE)
    page = await context.new_page()

    async def with_demo_mrr(route: Any) -> None:
        resp = await route.fetch()
        body = await resp.json()
        if "view" in body:  # signed in: the card the server sends for these figures
            body["view"]["subscriptions"] = mrr_card(DEMO_MRR, store="USD")
        await route.fulfill(response=resp, json=body)

    await page.route("**/dashboard/data", with_demo_mrr)
    await page.goto(url(store, "/dashboard"))
    await page.fill("#token", TOKEN)
    await page.click("#signin button[type=submit]")
    await page.locator("#mrr-card").wait_for(state="visible")
    split = await page.evaluate("""() => {
        const out = [];
        for (const id of ["mrr", "mrr-detail"]) {
          const node = document.getElementById(id).firstChild, s = node.textContent;
          for (let i = 0; i + 1 < s.length; i++) {
            const j = s[i + 1] === "\u2060" ? i + 2 : i + 1;  // the sign, then its amount past any joiner
            if (!"+−-".includes(s[i]) || !"$€£".includes(s[j] || "")) continue;
            const a = document.createRange(); a.setStart(node, i); a.setEnd(node, i + 1);
            const b = document.createRange(); b.setStart(node, j); b.setEnd(node, j + 1);
            if (Math.abs(a.getBoundingClientRect().top - b.getBoundingClientRect().top) > 2)
              out.push(s.slice(Math.max(0, i - 12), j + 8));
          }
        }
        return out; }""")
    await screenshot(page, "dashboard-mrr-phone.png")
    await context.close()
    assert not split, f"sign and amount on different lines: {split}"


async def test_sign_out_is_a_tappable_size(store: Bot, chromium: Any) -> None:
    """"Sign out" keeps its link look with the 44 px tap height the page's other buttons have."""
    context, page = await signed_in(store, chromium)
    box = await page.locator("footer button.link").bounding_box()
    await context.close()
    assert box["height"] >= 44 and box["width"] >= 44, box
