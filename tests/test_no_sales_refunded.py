"""No sales for 4 business hours: a sale refunded in full since still proves the store sells."""

from __future__ import annotations

import datetime as dt

from bot.alerts.jobs import AlertJobs
from bot.answers.gather import gather_health, gather_sales
from tests import test_alerts
from tests.conftest import Bot, FakeClock
from tests.test_alerts import NY, run

clock, store, jobs = test_alerts.clock, test_alerts.store, test_alerts.jobs  # a New York store, Tuesday 14:00


async def order(bot: Bot, at: dt.datetime, n: int = 1) -> None:
    await bot.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ($1, 'completed', 1000, 'USD', $2, $2)", f"pi_{n}", at.astimezone(dt.UTC))


def local(d: int, h: int, m: int = 0) -> dt.datetime:
    return dt.datetime(2026, 6, d, h, m, tzinfo=NY).astimezone(dt.UTC)


async def test_a_refunded_sale_still_proves_the_store_sells(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Last sale Monday 20:00; Tuesday 10:00 a customer buys (checkout works), and is refunded in full at 10:30.
    At 12:05 the store has sold 2 h ago: "No sales for 4.1 business hours (last order Mon 20:00)" is a false
    critical page (the failure-rate rule itself counts refunded orders as successful payments)."""
    await order(store, local(8, 20, 0), 1)
    await store.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ('pi_2', 'refunded', 1000, 'USD', $1, $2)", local(9, 10, 0), local(9, 10, 30))
    clock.now = local(9, 12, 5)
    await run(jobs, store)
    rows = await store.deps.pool.fetch("SELECT summary FROM alerts WHERE rule = 'no_sales'")
    assert [r["summary"] for r in rows] == []


async def test_health_counts_it_as_the_alert_does_and_sales_shows_the_orders_it_counts(store: Bot,
                                                                                       clock: FakeClock) -> None:
    """/health's last order and its silence flag (over an hour of business hours) are the no-sales alerts' (the
    refunded sale counts: nothing is flagged at 10:50); /sales's "last order" stays the newest of the orders it
    counts, which leave out one refunded in full."""
    await order(store, local(8, 20, 0), 1)
    await store.deps.pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " VALUES ('pi_2', 'refunded', 1000, 'USD', $1, $2)", local(9, 10, 0), local(9, 10, 30))
    clock.now = local(9, 10, 50)
    health = await gather_health(store.deps)
    assert health.last_order_at == local(9, 10, 0) and not health.order_silence_suspicious
    sales, _ = await gather_sales(store.deps)
    assert sales.last_order_at == local(8, 20, 0)
