""""Refunds made" keeps the refunds made in a period apart from the money that came back in it from refunds that failed
or were canceled: a $10 refund made on the day an earlier $30 refund fails reads "1 · $10.00 · $30.00 back (1 failed
or canceled)", not "net −$20.00", which lost the refund made. /sales and the evening report alike; the rollups sum
the voids apart (migration 0045) and stay what the plain query and a rebuild compute.

Signed webhooks through the real route, built as tests/test_refund_voids.py builds them: the one_off story of
tests/fixtures/stripe/versions, its Charge as charge.refunded, and fixtures3's Refund (stripe/openapi) failed as
Stripe sends it. The second payment is the same story under other ids.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bot.blocks.currency import refunds_text
from bot.db import bundled_migrations, migrate
from queries import sales, sales_raw
from queries.sales import CurrencyTotal
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.test_intake_order_fixes import arrive
from tests.test_refund_periods import DAY1, DAY2, NOW, evening_refunds, refunds_line, sale_on_day1
from tests.test_refund_voids import CH, PI, charge_refunded, failure_events, refund_object

VERSION = "clover"
DAY = dt.timedelta(days=1)
OTHER_PI, OTHER_CH = "pi_3OneOffStory0002", "ch_3OneOffStory0002"
ROLLUPS = ("SELECT level, bucket, currency, refunds, refunded, voids, voided FROM sales_rollups"
           " WHERE refunds <> 0 OR refunded <> 0 OR voids <> 0 OR voided <> 0 ORDER BY 1, 2, 3")


def other_payment(evt: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The same event of a second payment: its PaymentIntent, Charge and event ids changed."""
    copied: dict[str, Any] = json.loads(json.dumps(evt).replace(PI, OTHER_PI).replace(CH, OTHER_CH))
    copied["id"] = f"{evt['id']}_{suffix}"
    return copied


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot two hours into day 2 (tests/test_refund_periods.py's days)."""
    async with start_bot(dsn, fake_slack, clock=lambda: NOW) as running:
        yield running


def micros(t: dt.datetime) -> int:
    """A time as the refund ledger keeps it: µs since the epoch."""
    return int(t.timestamp()) * 1_000_000


def usd(count: int, amount: int) -> CurrencyTotal:
    return CurrencyTotal("USD", count, amount)


async def day2_story(store: Bot) -> None:
    """Two sales on day 1: the first refunded $30 on day 1, a refund that fails on day 2; the second refunded $10 on
    day 2, half an hour later."""
    refund = refund_object("re_day1", 3000, created=int(DAY1.timestamp()), status="failed")
    await arrive(store, [
        sale_on_day1(VERSION), other_payment(sale_on_day1(VERSION), "b"),
        charge_refunded(VERSION, 3000, at=int(DAY1.timestamp()), event_id="evt_ref_a"),
        *failure_events(VERSION, refund, at=int(DAY2.timestamp())),
        other_payment(charge_refunded(VERSION, 1000, at=int(DAY2.timestamp()) + 1800, event_id="evt_ref_b"), "b")])


async def test_a_refund_made_and_an_earlier_one_failing_are_both_shown(store: Bot) -> None:
    """Day 2: one $10 refund made, and $30 back from day 1's refund that failed. /sales and the evening report show
    both; day 1 keeps its $30 refund made; the two days together show both refunds made and the $30 back."""
    await day2_story(store)
    assert [refunds_line(await store.command("/sales", arg)) for arg in ("2026-06-10", "today")] == [
        "1 · $30.00", "1 · $10.00 · $30.00 back (1 failed or canceled)"]
    assert refunds_line(await store.command("/sales", "7d")) == "2 · $40.00 · $30.00 back (1 failed or canceled)"
    assert await evening_refunds(store, DAY2.date()) == "1 refund · $10.00 · $30.00 back (1 failed or canceled)"
    assert await evening_refunds(store, DAY1.date()) == "1 refund · $30.00"


async def test_the_figure_gives_made_and_voided_rows_apart(store: Bot) -> None:
    """sales.refunds: per currency a row of the refunds made and one of the voids (negative), equal to the plain
    query's over day 2, day 2's whole hours only (the rollups) and its edges only (refund_steps)."""
    await day2_story(store)
    pool = store.deps.pool
    windows = [(DAY2 - dt.timedelta(hours=10), DAY2 + dt.timedelta(hours=2)), (DAY2, DAY2 + dt.timedelta(hours=1)),
               (DAY2 - dt.timedelta(minutes=1), DAY2 + dt.timedelta(minutes=31))]
    for start, end in windows:
        got = await sales.refunds(pool, start=start, end=end)
        assert got == [usd(1, 1000), usd(-1, -3000)], (start, end, got)
        assert got == await sales_raw.refunds(pool, start=start, end=end)
    rows = [tuple(r) for r in await pool.fetch(ROLLUPS)]
    await pool.execute("SELECT sales_rollups_rebuild()")
    assert rows == [tuple(r) for r in await pool.fetch(ROLLUPS)]
    assert ("hour", DAY2, "USD", 0, -2000, 1, 3000) in rows  # nets to no refund: the row keeps both apart


async def test_a_refund_made_and_voided_in_one_hour_shows_both(db: asyncpg.Connection) -> None:
    """A $10 refund made and failing ten minutes later, in one hour: the hour's net is nothing, its rollup row still
    holds the refund made and the void, and the figure shows both; triggers and a rebuild agree."""
    t0 = dt.datetime(2026, 6, 10, 8, 0, tzinfo=dt.UTC)
    await db.execute("INSERT INTO orders (id, payment_status, amount_total, currency, customer_email, created_at,"
                     " status_at) VALUES ('o_1', 'completed', 4900, 'EUR', 'a@example.com', $1, $1)", t0)
    hour = t0 + dt.timedelta(hours=2)
    ledger = {"charges": [[1000, micros(hour)]], "voids": {"re_1": [1000, micros(hour), micros(hour) + 600_000_000]}}
    await db.execute("UPDATE orders SET refund_ledger = $1::text::jsonb", json.dumps(ledger))
    assert [tuple(r) for r in await db.fetch(ROLLUPS)] == [
        ("day", dt.datetime(2026, 6, 10, tzinfo=dt.UTC), "EUR", 0, 0, 1, 1000), ("hour", hour, "EUR", 0, 0, 1, 1000)]
    for start, end in ((hour, hour + dt.timedelta(hours=1)), (hour, hour + dt.timedelta(minutes=11)), (t0, t0 + DAY)):
        got = await sales.refunds(db, start=start, end=end)
        assert got == [CurrencyTotal("EUR", 1, 1000), CurrencyTotal("EUR", -1, -1000)], (start, end)
        assert got == await sales_raw.refunds(db, start=start, end=end)
    rows = [tuple(r) for r in await db.fetch(ROLLUPS)]
    await db.execute("SELECT sales_rollups_rebuild()")
    assert rows == [tuple(r) for r in await db.fetch(ROLLUPS)]
    await db.execute("UPDATE orders SET refund_ledger = refund_ledger - 'voids'")  # the void forgotten: back out
    assert [tuple(r) for r in await db.fetch(ROLLUPS)] == [
        ("day", dt.datetime(2026, 6, 10, tzinfo=dt.UTC), "EUR", 1, 1000, 0, 0), ("hour", hour, "EUR", 1, 1000, 0, 0)]



OLD_ORDER = """INSERT INTO orders (id, payment_status, amount_total, amount_refunded, currency, customer_email,
                                   created_at, status_at, refund_ledger)
               VALUES ($1, 'completed', 4900, $2, 'USD', $3, $4, $4, $5::text::jsonb)"""


async def test_the_upgrade_fills_the_new_columns_from_what_is_stored(empty_dsn: str) -> None:
    """A store from before 0045: a refund of day 1 failing on day 2 beside one made on day 2, orders with and without
    an email. After the upgrade the rollups hold the void and the orders without an email, as a rebuild computes
    them, and day 2 shows the refund made and the money back apart."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0045"])
        sold = DAY1 - dt.timedelta(hours=3)
        for oid, refunded, email, ledger in (
                ("o_void", 0, None, {"charges": [[3000, micros(DAY1)]],
                                     "voids": {"re_1": [3000, micros(DAY1), micros(DAY2)]}}),
                ("o_made", 1000, "a@example.com", {"charges": [[1000, micros(DAY2 + dt.timedelta(minutes=30))]]}),
                ("o_none", 0, None, {})):
            await conn.execute(OLD_ORDER, oid, refunded, email, sold, json.dumps(ledger))
        await migrate(conn)
        rows = [tuple(r) for r in await conn.fetch(ROLLUPS)]
        assert ("hour", DAY2, "USD", 0, -2000, 1, 3000) in rows
        no_email = "SELECT level, no_email FROM sales_rollups WHERE bucket = $1 OR bucket = $2 ORDER BY 1"
        assert [tuple(r) for r in await conn.fetch(no_email, sold, DAY1.replace(hour=0))] == [("day", 2), ("hour", 2)]
        assert await sales.refunds(conn, start=DAY2, end=DAY2 + DAY) == [usd(1, 1000), usd(-1, -3000)]
        kept = [tuple(r) for r in await conn.fetch("SELECT * FROM sales_rollups ORDER BY 1, 2, 3")]
        await conn.execute("SELECT sales_rollups_rebuild()")
        assert kept == [tuple(r) for r in await conn.fetch("SELECT * FROM sales_rollups ORDER BY 1, 2, 3")]
    finally:
        await conn.close()


def test_the_wording_keeps_made_and_back_apart() -> None:
    """Made first, per currency summed never across them; the money back after it, with how many failed."""
    made_usd, made_eur, back_gbp = usd(2, 2500), CurrencyTotal("EUR", 1, 500), CurrencyTotal("GBP", -1, -1000)
    assert refunds_text([]) == "none" and refunds_text([], noun=True) == "no refunds"
    assert refunds_text([made_usd, made_eur]) == "3 · $25.00 + €5.00"
    assert refunds_text([made_usd], noun=True) == "2 refunds · $25.00"
    assert refunds_text([made_usd, back_gbp]) == "2 · $25.00 · £10.00 back (1 failed or canceled)"
    assert refunds_text([back_gbp, usd(-2, -700)], noun=True) == "none · £10.00 + $7.00 back (3 failed or canceled)"
    assert re.fullmatch(r"[^−-]*", refunds_text([made_usd, back_gbp]))  # no minus sign anywhere


async def test_0045_backfill_misses_voids_of_an_hour_that_netted_to_no_row(empty_dsn: str) -> None:
    """Before 0045, a refund made and voided within one hour and written in one statement (the ledger arriving
    whole: a fix at psql, out-of-order events) nets to nothing: the trigger's HAVING stores no rollup row for that
    hour or day. 0045's backfill inserts those rows too (an upsert), so /sales for that day shows the refund made and
    the money back, as a rebuild and the plain query do (it only UPDATEd existing rows: "Refunds made: none")."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0045"])
        sold = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
        hour = dt.datetime(2026, 6, 5, 14, 0, tzinfo=dt.UTC)
        ledger = {"charges": [[1000, micros(hour + dt.timedelta(minutes=5))]],
                  "voids": {"re_1": [1000, micros(hour + dt.timedelta(minutes=5)),
                                     micros(hour + dt.timedelta(minutes=40))]}}
        await conn.execute(
            "INSERT INTO orders (id, payment_status, amount_total, amount_refunded, currency, customer_email,"
            " created_at, status_at, refund_ledger) VALUES ('o_1', 'completed', 4900, 0, 'USD', 'a@example.com',"
            " $1, $1, $2::text::jsonb)", sold, json.dumps(ledger))
        await migrate(conn)
        day = dt.datetime(2026, 6, 5, tzinfo=dt.UTC)
        got = await sales.refunds(conn, start=day, end=day + DAY)
        raw = await sales_raw.refunds(conn, start=day, end=day + DAY)
        assert raw == [usd(1, 1000), usd(-1, -1000)], raw  # what the orders say
        kept = [tuple(r) for r in await conn.fetch("SELECT * FROM sales_rollups ORDER BY 1, 2, 3")]
        await conn.execute("SELECT sales_rollups_rebuild()")
        rebuilt = [tuple(r) for r in await conn.fetch("SELECT * FROM sales_rollups ORDER BY 1, 2, 3")]
        assert (got, kept) == (raw, rebuilt), got
    finally:
        await conn.close()


TWO_FAILING_AT_ONCE = dt.datetime(2026, 6, 10, 8, 0, tzinfo=dt.UTC)


def two_failing_at_once() -> dict[str, Any]:
    """One order, two refunds ($10 then $20, an hour apart), both rejected by the bank, Stripe's two refund.failed
    events sharing their `created` second (the ledger keeps event times to the second)."""
    t0 = TWO_FAILING_AT_ONCE
    r1, r2, gone = t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=2), t0 + dt.timedelta(hours=5)
    return {"charges": [[1000, micros(r1)], [3000, micros(r2)]],
            "voids": {"re_1": [1000, micros(r1), micros(gone)], "re_2": [2000, micros(r2), micros(gone)]}}


async def test_two_refunds_failing_in_the_same_second_count_as_one(db: asyncpg.Connection) -> None:
    """refund_steps held one step for the instant (-$30, refunds -1), so "Refunds made" read "$30.00 back (1 failed or
    canceled)" while the failure messages said 2 refunds failed: each void is a step of its own now (migration 0051)."""
    t0 = TWO_FAILING_AT_ONCE
    await db.execute("INSERT INTO orders (id, payment_status, amount_total, currency, customer_email, created_at,"
                     " status_at) VALUES ('o_1', 'completed', 4900, 'USD', 'a@example.com', $1, $1)", t0)
    await db.execute("UPDATE orders SET refund_ledger = $1::text::jsonb", json.dumps(two_failing_at_once()))
    day = t0.replace(hour=0)
    got = await sales.refunds(db, start=day, end=day + DAY)
    assert got == [usd(2, 3000), usd(-2, -3000)], got
    assert await sales_raw.refunds(db, start=day, end=day + DAY) == got
    assert refunds_text(got) == "2 · $30.00 · $30.00 back (2 failed or canceled)"


async def test_a_refund_made_in_the_second_another_is_voided_is_not_netted(db: asyncpg.Connection) -> None:
    """A $10 refund, then in one second a $20 refund made (charge.refunded: $30) and the $10 one failing: a refund of
    $20 made and $10 back, not one "refund" of $10."""
    t0 = TWO_FAILING_AT_ONCE
    r1, r2 = t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=2)
    ledger = {"charges": [[1000, micros(r1)], [3000, micros(r2)]], "voids": {"re_1": [1000, micros(r1), micros(r2)]}}
    await db.execute("INSERT INTO orders (id, payment_status, amount_total, currency, customer_email, created_at,"
                     " status_at, refund_ledger) VALUES ('o_1', 'completed', 4900, 'USD', 'a@example.com', $1, $1,"
                     " $2::text::jsonb)", t0, json.dumps(ledger))
    day = t0.replace(hour=0)
    got = await sales.refunds(db, start=r2, end=r2 + dt.timedelta(seconds=1))
    assert got == [usd(1, 2000), usd(-1, -1000)], got
    assert await sales.refunds(db, start=day, end=day + DAY) == [usd(2, 3000), usd(-1, -1000)]


async def test_the_upgrade_counts_each_void_of_an_instant(empty_dsn: str) -> None:
    """A store from before 0051 with the two refunds failing at once: the upgrade derives the order's steps again and
    moves the rollups, as a rebuild computes them."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0051"])
        t0 = TWO_FAILING_AT_ONCE
        await conn.execute(
            "INSERT INTO orders (id, payment_status, amount_total, amount_refunded, currency, customer_email,"
            " created_at, status_at, refund_ledger) VALUES ('o_1', 'completed', 4900, 0, 'USD', 'a@example.com',"
            " $1, $1, $2::text::jsonb)", t0, json.dumps(two_failing_at_once()))
        day = t0.replace(hour=0)
        assert await sales.refunds(conn, start=day, end=day + DAY) == [usd(2, 3000), usd(-1, -3000)]
        await migrate(conn)
        assert await sales.refunds(conn, start=day, end=day + DAY) == [usd(2, 3000), usd(-2, -3000)]
        kept = [tuple(r) for r in await conn.fetch("SELECT * FROM sales_rollups ORDER BY 1, 2, 3")]
        steps = sorted(tuple(r) for r in await conn.fetch("SELECT * FROM refund_steps"))
        await conn.execute("SELECT sales_rollups_rebuild()")
        assert kept == [tuple(r) for r in await conn.fetch("SELECT * FROM sales_rollups ORDER BY 1, 2, 3")]
        assert steps == sorted(tuple(r) for r in await conn.fetch("SELECT * FROM refund_steps"))
    finally:
        await conn.close()
