"""The MRR summary's subscribers (queries/mrr.py, migration 0055): distinct paying customers per currency, each
subscription without a customer one of its own, read from the paying subscriptions' index rather than by sorting
every subscription's key on each /sales, App Home, dashboard and JSON read."""

from __future__ import annotations

import datetime as dt
import json
import random

import asyncpg

from queries import mrr
from queries.cover import DAY, ceil_to, floor_to
from tests.test_intake_lookup import scans

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
STATES = """
INSERT INTO subscriptions (id, customer, status, mrr_units, currency, last_event_id, last_event_at, last_event_rank)
SELECT s.id, s.customer, 'active', s.mrr_units, s.currency, 'evt_' || s.id, $5, 1
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) AS s (id, customer, mrr_units, currency)
"""
# What the summary's subscribers and MRR now are, with no movements stored: a plain count over every state row.
PLAIN = """
SELECT currency, count(DISTINCT coalesce(customer, id)) FILTER (WHERE mrr_units > 0) AS active, sum(mrr_units) AS mrr
  FROM subscriptions GROUP BY currency
"""


async def _store(conn: asyncpg.Connection, rows: list[tuple[str, str | None, int, str]]) -> None:
    await conn.execute(STATES, *(list(c) for c in zip(*rows, strict=True)), NOW - DAY)
    await conn.execute("VACUUM ANALYZE subscriptions")  # as autovacuum leaves it: the visibility map set


def _varied(n: int) -> list[tuple[str, str | None, int, str]]:
    """Subscriptions of customers holding one to four, some in two currencies, some with no customer, some not
    paying; GBP and JPY hold only zero-MRR ones, and sort between and around the paying currencies."""
    rng = random.Random(55)
    rows: list[tuple[str, str | None, int, str]] = []
    for i in range(n):
        customer = None if rng.random() < 0.1 else f"cus_{rng.randrange(n // 3)}"
        paying = rng.random() < 0.7
        currency = rng.choice(("AUD", "EUR", "USD", "USD"))
        rows.append((f"sub_{i}", customer, rng.choice((1900, 2900)) * 12_000_000 if paying else 0, currency))
    rows += [(f"sub_gbp{i}", f"cus_{i}", 0, "GBP") for i in range(3)]
    rows += [("sub_jpy", None, 0, "JPY"), ("sub_zar", "cus_1", 0, "ZAR")]
    return rows


async def test_subscribers_are_the_distinct_paying_customers_of_each_currency(conn: asyncpg.Connection) -> None:
    await _store(conn, _varied(3000))
    expected = {r["currency"]: (r["active"], r["mrr"] // 12_000_000) for r in await conn.fetch(PLAIN)}
    assert {c for c, (active, _) in expected.items() if active == 0} == {"GBP", "JPY", "ZAR"}

    got = await mrr.summary(conn, now=NOW, since=NOW - dt.timedelta(days=30))

    # Every currency holding a subscription is listed, a zero-MRR-only one at 0.
    assert {c.currency: (c.active, c.mrr) for c in got.currencies} == expected
    assert got.active == await conn.fetchval("SELECT count(DISTINCT (currency, coalesce(customer, id)))"
                                             " FROM subscriptions WHERE mrr_units > 0")


async def test_the_summary_reads_subscriptions_from_their_indexes(conn: asyncpg.Connection) -> None:
    # Sorting every subscription's text key per read was 19.6 ms of /sales at 20,000 subscriptions.
    await _store(conn, _varied(20_000))
    week_ago = NOW - dt.timedelta(days=7)
    since = NOW - dt.timedelta(days=30)
    args = (NOW, since, week_ago, ceil_to(since, DAY), floor_to(NOW, DAY), floor_to(week_ago, DAY) + DAY,
            floor_to(NOW, DAY) + DAY)
    [explained] = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + mrr.SUMMARY, *args))

    read = {(node, table) for node, table in scans(explained["Plan"]) if table == "subscriptions"}
    assert read == {("Index Only Scan", "subscriptions")}, read
