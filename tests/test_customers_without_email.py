"""Orders without a customer email: "Customers" counts distinct emails, so such orders counted nothing and a period of
one order read "Customers: 0". The answer now says how many orders it could not count ("2 (+1 order without an
email)", "unknown (no email on the order)"), from the hourly and daily rollups (sales_rollups.no_email, migration
0045) and the edge orders like the rest of /sales; the JSON adds `orders_without_email`.

Real checkout.session.completed events through the signed route; Stripe's customer_details.email is nullable
(https://docs.stripe.com/api/checkout/sessions/object#checkout_session_object-customer_details-email).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bot.blocks.currency import customers_text
from queries import sales_raw, sketch
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack

NOW = dt.datetime(2026, 6, 10, 18, 20, tzinfo=dt.UTC)
TOKEN = "mon-token-without-email-long-enough"
SALES_ROLLUPS = ("SELECT level, bucket, currency, orders, no_email FROM sales_rollups"
                 " WHERE orders <> 0 OR no_email <> 0 ORDER BY 1, 2, 3")


def sale(n: int, at: dt.datetime, email: str | None) -> dict[str, Any]:
    """A paid checkout of payment n at `at`; `email` None as Stripe sends a session that collected none."""
    evt = paid_checkout(n, at)
    evt["data"]["object"]["customer_details"] = {**evt["data"]["object"]["customer_details"], "email": email}
    return evt


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """Today: a@ twice, then two orders without an email — one at 10:00 (a whole hour: the rollups), one at 18:05
    (the last part-hour: the orders themselves); yesterday one order, without an email."""
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, MONITORING_TOKEN=TOKEN) as bot:
        for n, at, email in ((1, NOW - dt.timedelta(hours=9), "a@example.com"),
                             (2, NOW - dt.timedelta(hours=7), "a@example.com"),
                             (3, NOW.replace(hour=10, minute=0), None),
                             (4, NOW.replace(hour=18, minute=5), None),
                             (5, NOW - dt.timedelta(days=1), None)):
            assert (await bot.stripe(sale(n, at, email))).status == 200
        yield bot


def customers_line(body: dict[str, Any]) -> str:
    """/sales' "Customers" value, its blocks valid."""
    assert_valid_message(body)
    shown = json.dumps(body["blocks"], ensure_ascii=False)
    start = shown.index("*Customers:*\\n") + len("*Customers:*\\n")
    return shown[start:shown.index('"', start)]


async def test_sales_says_how_many_orders_it_could_not_count(store: Bot) -> None:
    """Today: 4 orders, one customer with an email and two orders without: "1 (+2 orders without an email)";
    yesterday's one order without an email: its customers are unknown, not 0."""
    assert await store.deps.pool.fetchval("SELECT count(*) FROM orders WHERE customer_email IS NULL") == 3
    assert customers_line(await store.command("/sales")) == "1 (+2 orders without an email)"
    assert customers_line(await store.command("/sales", "yesterday")) == "unknown (no email on the order)"
    assert customers_line(await store.command("/sales", "24h")) == "1 (+3 orders without an email)"


async def test_the_json_adds_the_orders_without_an_email(store: Bot) -> None:
    """`unique_customers` keeps its meaning (distinct emails); `orders_without_email` is new beside it."""
    resp = await store.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    today = (await resp.json())["today"]
    assert (today["order_count"], today["unique_customers"], today["orders_without_email"]) == (4, 1, 2)


def test_the_wording() -> None:
    """Exact, estimated, and none with an email; no orders without one reads as before."""
    assert customers_text(3) == "3" and customers_text(612_300, 0.03) == "≈612,300 (±3.0%)"
    assert customers_text(2, without_email=1) == "2 (+1 order without an email)"
    assert customers_text(15_200, 0.03, without_email=40) == "≈15,200 (±3.0%; +40 orders without an email)"
    assert customers_text(0, without_email=1) == "unknown (no email on the order)"
    assert customers_text(0, without_email=3) == "unknown (no email on the 3 orders)"
    assert customers_text(0) == "0"


async def test_the_rollups_count_them_whatever_wrote_the_orders(db: asyncpg.Connection) -> None:
    """Inserted, given an email, losing it, refunded, moved and deleted at psql: over random windows the count equals
    the plain query's, and the rollups what a rebuild computes."""
    base = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    await db.execute("INSERT INTO orders (id, payment_status, amount_total, currency, customer_email, created_at,"
                     " status_at) SELECT 'o_' || g, 'completed', 100 * g, CASE WHEN g % 4 = 0 THEN 'EUR' ELSE 'USD'"
                     " END, CASE WHEN g % 3 = 0 THEN NULL ELSE 'c' || (g % 50) || '@example.com' END,"
                     " $1::timestamptz + g * interval '7 minutes', now() FROM generate_series(1, 1500) AS g", base)
    await db.execute("UPDATE orders SET customer_email = 'late@example.com' WHERE id IN ('o_3', 'o_6', 'o_9')")
    await db.execute("UPDATE orders SET customer_email = NULL WHERE id IN ('o_1', 'o_2')")
    await db.execute("UPDATE orders SET payment_status = 'refunded', amount_refunded = amount_total,"
                     " refunded_at = created_at WHERE id IN ('o_12', 'o_13')")
    await db.execute("UPDATE orders SET created_at = created_at + interval '50 minutes', currency = 'GBP'"
                     " WHERE id IN ('o_15', 'o_16', 'o_30')")
    await db.execute("DELETE FROM orders WHERE id IN ('o_18', 'o_19')")
    rng = random.Random(45)
    for _ in range(40):
        start = base + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 7))
        end = start + dt.timedelta(minutes=rng.randrange(1, 60 * 24 * 4), seconds=rng.randrange(60))
        got = await sketch.customers(db, start=start, end=end)
        exact = (await sales_raw.unique_customers(db, start=start, end=end),
                 await sales_raw.orders_without_email(db, start=start, end=end))
        assert (got.count, got.without_email) == exact, (start, end)
    kept = [tuple(r) for r in await db.fetch(SALES_ROLLUPS)]
    # every third without one, three given one, two losing theirs, o_12 refunded and o_18 deleted
    assert sum(r[4] for r in kept if r[0] == "day") == await db.fetchval(
        "SELECT count(*) FROM orders WHERE payment_status = 'completed' AND customer_email IS NULL") == 500 - 3 + 2 - 2
    await db.execute("SELECT sales_rollups_rebuild()")
    assert kept == [tuple(r) for r in await db.fetch(SALES_ROLLUPS)]
