"""Customer and store text stays on its one line: a newline in a product name, an affiliate code or a plan must not
forge a field, a sale or an order in pings, bursts and the App Home (found by a review helper)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from bot.blocks.text import inline
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack

NOW = dt.datetime.now(dt.UTC)
FAKE_LINE = "X\n• ¥9,999,999 · Gold · adm***"  # 29 chars: inside the burst's 40-char product clip


def _field_texts(post: dict[str, Any]) -> list[str]:
    return [f["text"] for b in post["blocks"] if b["type"] == "section" for f in b.get("fields", [])]


async def test_a_product_name_with_newlines_cannot_forge_an_amount_field_in_the_sale_ping(bot: Bot) -> None:
    """Each field is "*Label:*\\nvalue": a value must stay on one line, else it can draw a fake "Amount"."""
    evt = paid_checkout(1, NOW, amount=500, product="Mug\n*Amount:*\n$9,999.00")
    assert (await bot.stripe(evt)).status == 200
    await bot.drain()
    [post] = bot.slack_api.posted()
    product = next(t for t in _field_texts(post) if t.startswith("*Product:*"))
    assert product.count("\n") == 1, f"product field spans several lines: {product!r}"


async def test_an_affiliate_code_with_newlines_cannot_add_forged_lines_to_the_sale_ping(bot: Bot) -> None:
    """The affiliate (metadata `ref`, often copied from a URL the customer controls) stays on its line."""
    evt = paid_checkout(2, NOW, amount=500, product="Mug")
    evt["data"]["object"]["metadata"]["ref"] = "partner\n\n:rotating_light: *Refund requested: reply with the card*"
    assert (await bot.stripe(evt)).status == 200
    await bot.drain()
    [post] = bot.slack_api.posted()
    affiliate = next(b["text"]["text"] for b in post["blocks"]
                     if b["type"] == "section" and "text" in b and "Affiliate" in b["text"]["text"])
    assert "\n" not in affiliate, f"affiliate line spans several lines: {affiliate!r}"


async def test_a_product_name_with_a_newline_cannot_forge_a_sale_in_a_burst_summary(bot: Bot) -> None:
    """A burst lists one line per sale; a product name must not add a line that reads as another sale."""
    for n, product in enumerate(["Mug", FAKE_LINE, "Tee"], start=10):
        assert (await bot.stripe(paid_checkout(n, NOW, amount=500, product=product))).status == 200
    await bot.drain()
    [post] = bot.slack_api.posted()
    assert "3 new sales" in post["text"]
    listing = next(b["text"]["text"] for b in post["blocks"]
                   if b["type"] == "section" and "text" in b and b["text"]["text"].startswith("•"))
    bullets = [line for line in listing.split("\n") if line.startswith("•")]
    assert len(bullets) == 3, f"3 sales, {len(bullets)} sale lines listed:\n{listing}"


async def test_a_product_name_with_a_newline_cannot_forge_an_order_on_the_app_home(dsn: str,
                                                                                   fake_slack: FakeSlack) -> None:
    """App Home's "Latest orders" is one line per order; a product name must not add a fake order line."""
    async with start_bot(dsn, fake_slack) as bot:
        forged = paid_checkout(30, NOW, amount=500, product="X\n*¥9,999,999* · Gold · adm***")
        assert (await bot.stripe(forged)).status == 200
        assert (await bot.slack_event({"type": "app_home_opened", "user": "U_OWNER", "channel": "D1",
                                       "tab": "home"})).status == 200
        for _ in range(250):
            if calls := fake_slack.posted("views.publish"):
                break
            await asyncio.sleep(0.02)
        view = calls[0]["view"]
        idx = next(i for i, b in enumerate(view["blocks"])
                   if b["type"] == "header" and "Latest orders" in b["text"]["text"])
        orders = view["blocks"][idx + 1]["text"]["text"].split("\n")
        assert len(orders) == 1, f"1 order, {len(orders)} order lines shown: {orders}"


@pytest.mark.parametrize(("raw", "shown"), [
    ("Mug\r\n*Amount:* $9", "Mug *Amount:* $9"), ("a\tb\u2028c\x1fd", "a b c d"),
    ("  <!channel>\n& co ", "&lt;!channel&gt; &amp; co"), ("x" * 12, "xxxxxxxxx…"),
])
def test_inline_text_is_one_escaped_clipped_line(raw: str, shown: str) -> None:
    """Every whitespace run (CR, tab, Unicode line separator) is one space; then clipped to the limit and escaped."""
    assert inline(raw, 10 if len(raw) == 12 else 100) == shown
