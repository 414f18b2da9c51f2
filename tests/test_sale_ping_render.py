"""Sale pings are kept as the sale's fields and rendered only when posted: what reaches Slack is the message the
intake used to render for the same sale, byte for byte; a row queued rendered (by an older intake) goes as is."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.blocks.pings import SaleView, sale_message, sale_ping, sale_record
from bot.intake.fold import LATE_AFTER
from tests.blockkit import assert_valid_message
from tests.conftest import Bot
from tests.reference import stripe_fixture

ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Europe/Berlin")
CURRENCIES = ("usd", "eur", "jpy", "kwd", "gbp", "inr", "xyz")
MOMENTS = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                       timezones=st.sampled_from([dt.UTC, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/Denver")]))
OPTIONAL_TEXT = st.none() | st.text(max_size=80)
SALES = st.builds(SaleView, order_id=st.text(min_size=1, max_size=40), product=OPTIONAL_TEXT,
                  amount=st.integers(min_value=0, max_value=10**12), currency=st.sampled_from(CURRENCIES),
                  customer_email=OPTIONAL_TEXT, affiliate=OPTIONAL_TEXT, occurred_at=MOMENTS, late=st.booleans())


def as_sent(payload: dict[str, Any]) -> str:
    """What a sender takes from a payload (text and blocks) as JSON bytes, keys sorted: a payload stored rendered
    came back from jsonb with its keys in jsonb's order (shortest first), one rendered at delivery keeps the
    renderer's; JSON objects are unordered, so that is the one difference Slack never sees."""
    return json.dumps({"text": payload["text"], "blocks": payload["blocks"]}, ensure_ascii=False, sort_keys=True)


def old_payload(sale: SaleView, tz: ZoneInfo) -> dict[str, Any]:
    """The outbox payload the intake stored before sales were kept unrendered."""
    return sale_message(sale, tz=tz).as_payload() | {
        "sale": {"order_id": sale.order_id, "product": sale.product, "customer": sale.customer_email}}


@settings(max_examples=300, deadline=None)  # the first example loads Babel's locale data
@given(SALES, st.sampled_from(ZONES))
def test_a_kept_sale_renders_to_the_message_the_intake_rendered(sale: SaleView, zone: str) -> None:
    """Kept as JSON (the outbox's jsonb) and rendered at delivery, any sale gives the old message exactly."""
    tz = ZoneInfo(zone)
    kept = json.loads(json.dumps({"sale": sale_record(sale)}))
    rendered = sale_ping(kept["sale"], amount=sale.amount, currency=sale.currency, tz=tz)
    assert as_sent(rendered) == as_sent(old_payload(sale, tz))
    assert_valid_message(rendered)


def checkout(n: int, *, age: dt.timedelta = dt.timedelta(0), affiliate: str | None = None) -> dict[str, Any]:
    """A paid checkout.session.completed event for payment number n, created `age` ago."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt["id"] = f"evt_sale_{n}"
    evt["created"] = int(time.time() - age.total_seconds())
    obj = evt["data"]["object"]
    obj.update(id=f"cs_{n}", payment_intent=f"pi_{n}", amount_total=4200 + n, currency="eur")
    if affiliate:
        obj["metadata"] = {**(obj.get("metadata") or {}), "affiliate_id": affiliate}
    return evt


async def expected_ping(bot: Bot, order_id: str, *, late: bool) -> dict[str, Any]:
    """The message the old intake rendered for this stored order, in the store's zone."""
    o = await bot.deps.pool.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    view = SaleView(order_id=o["id"], product=o["product_name"], amount=o["amount_total"], currency=o["currency"],
                    customer_email=o["customer_email"], affiliate=o["affiliate_id"], occurred_at=o["created_at"],
                    late=late)
    return old_payload(view, bot.deps.worker.tz)


async def test_a_sale_posted_alone_is_rendered_at_delivery_as_before(bot: Bot) -> None:
    """A fresh sale and one that arrives 20 minutes late: each row keeps fields, not blocks; each post is the
    old message byte for byte, the late one with its "delivered late" note."""
    for n, age in ((1, dt.timedelta(0)), (2, LATE_AFTER * 2)):
        resp = await bot.stripe(checkout(n, age=age, affiliate="partner7"))
        assert resp.status == 200, await resp.text()
        kept = json.loads(await bot.deps.pool.fetchval("SELECT payload::text FROM outbox WHERE kind = 'sale'"
                                                       " AND status = 'pending'"))
        assert "blocks" not in kept and "text" not in kept and kept["sale"]["late"] is (n == 2)
        await bot.drain(ignore_pace=True)
        order_id = await bot.deps.pool.fetchval("SELECT id FROM orders WHERE payment_intent_id = $1", f"pi_{n}")
        post = bot.slack_api.posted()[-1]
        assert as_sent(post) == as_sent(await expected_ping(bot, order_id, late=n == 2))
        assert ("delivered late" in json.dumps(post["blocks"])) is (n == 2)
        assert_valid_message(post)
    assert len(bot.slack_api.posted()) == 2


async def test_an_update_of_a_sale_ping_is_rendered_too(bot: Bot) -> None:
    """An update of a delivered sale ping (op 'update', kind 'sale') goes out rendered from its own fields."""
    resp = await bot.stripe(checkout(3))
    assert resp.status == 200, await resp.text()
    await bot.drain(ignore_pace=True)
    target, kept = await bot.deps.pool.fetchrow("SELECT id, payload FROM outbox WHERE kind = 'sale'")
    changed = {"sale": kept["sale"] | {"product": "Renamed plan"}}
    await bot.deps.pool.execute("INSERT INTO outbox (dedupe_key, channel, kind, payload, amount, currency, op,"
                                " target_id) VALUES ('sale:upd', 'sales', 'sale', $1, 999, 'usd', 'update', $2)",
                                changed, target)
    await bot.drain(ignore_pace=True)
    [update] = bot.slack_api.posted("chat.update")
    want = sale_ping(changed["sale"], amount=999, currency="usd", tz=bot.deps.worker.tz)
    assert as_sent(update) == as_sent(want) and "Renamed plan" in update["text"]
    assert_valid_message(update)


async def test_a_sale_queued_rendered_by_an_older_intake_goes_as_it_is(bot: Bot) -> None:
    """A row left in the outbox by the previous version (text and blocks already in it) is posted unchanged."""
    sale = SaleView(order_id="pi_old", product="Old plan", amount=1500, currency="usd",
                    customer_email="old@example.com", affiliate=None, occurred_at=dt.datetime.now(dt.UTC))
    payload = old_payload(sale, ZoneInfo("UTC"))
    await bot.deps.pool.execute("INSERT INTO outbox (dedupe_key, channel, kind, payload, amount, currency)"
                                " VALUES ('sale:pi_old', 'sales', 'sale', $1, 1500, 'usd')", payload)
    await bot.drain(ignore_pace=True)
    [post] = bot.slack_api.posted()
    assert as_sent(post) == as_sent(payload)
