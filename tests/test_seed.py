"""`salespulse seed`: synthetic store history bulk-loaded by COPY into a real, migrated database."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.cli.main import main
from bot.demo.load import load
from bot.demo.seed import PRICES, SeedCounts, SeedSpec, generate
from queries import seed as seed_queries

ORDERS = 2_000
DAYS = 7


def spec(*, orders: int = ORDERS, days: int = DAYS, token: str = "t1", seed: int = 7,
         now: dt.datetime | None = None, chunk_size: int = 500) -> SeedSpec:
    """A seeding run ending now (or at `now`), in a store zone with DST."""
    return SeedSpec(orders=orders, days=days, now=now or dt.datetime.now(dt.UTC),
                    tz=ZoneInfo("America/New_York"), seed=seed, token=token, chunk_size=chunk_size)


async def seed_into(conn: asyncpg.Connection, run: SeedSpec) -> SeedCounts:
    """Generate and COPY one run."""
    return await load(conn, generate(run))


Seeded = tuple[asyncpg.Connection, SeedSpec, SeedCounts]


@pytest.fixture
async def seeded(conn: asyncpg.Connection) -> Seeded:
    """A fresh database holding 2,000 seeded orders over 7 days, with the run's spec and totals."""
    run = spec()
    return conn, run, await seed_into(conn, run)


async def test_seed_loads_exactly_n_successful_orders_with_failures_on_top(seeded: Seeded) -> None:
    """N counts completed + refunded orders; failed attempts (~4% of attempts) are extra rows."""
    conn, _, counts = seeded
    by_status = dict(await conn.fetch("SELECT payment_status, count(*) FROM orders GROUP BY 1"))
    assert by_status["completed"] + by_status["refunded"] == ORDERS == counts.orders
    failures = await conn.fetchval("SELECT count(*) FROM payment_failures")
    assert by_status["failed"] == counts.failed == failures
    assert 0.02 < counts.failed / (ORDERS + counts.failed) < 0.07
    assert set(by_status) == {"completed", "refunded", "failed"}
    unlinked = await conn.fetchval("""
        SELECT count(*) FROM orders o LEFT JOIN payment_failures f ON f.order_id = o.id
         WHERE o.payment_status = 'failed' AND (f.order_id IS NULL OR o.failure_reason IS NULL)""")
    assert unlinked == 0


async def test_seeded_times_lie_within_the_days_ending_now(seeded: Seeded) -> None:
    """Every order is inside [now - D days, now]; no session, refund or log is in the future."""
    conn, run, _ = seeded
    first, last = await conn.fetchrow("SELECT min(created_at), max(created_at) FROM orders")
    assert run.now - dt.timedelta(days=DAYS) <= first < last <= run.now
    assert last > run.now - dt.timedelta(hours=6)  # the window runs right up to now
    latest = await conn.fetchval("""
        SELECT max(t) FROM (SELECT greatest(created_at, completed_at, status_at) FROM checkout_sessions
                            UNION ALL SELECT refunded_at FROM orders
                            UNION ALL SELECT greatest(created_at, updated_at) FROM webhook_logs) AS x(t)""")
    assert latest <= run.now
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE refunded_at < created_at") == 0
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE status_at <> created_at") == 0


async def test_seeded_orders_mix_currencies_in_their_minor_units(seeded: Seeded) -> None:
    """Mostly USD, some EUR and GBP, a little JPY priced in whole yen (¥2,980 is 2980)."""
    conn, _, _ = seeded
    shares = dict(await conn.fetch("SELECT currency, count(*) FROM orders GROUP BY 1"))
    assert set(shares) == {"USD", "EUR", "GBP", "JPY"}
    assert shares["USD"] > sum(shares.values()) / 2
    yen = {r[0] for r in await conn.fetch("SELECT amount_total FROM orders WHERE currency = 'JPY'")}
    assert 2980 in yen and yen <= set(PRICES["JPY"])
    assert await conn.fetchval("SELECT count(DISTINCT product_name) FROM orders") == 5


async def test_seeded_customers_come_back(seeded: Seeded) -> None:
    """Emails come from a pool, so there are fewer unique customers than orders and some buy again."""
    conn, _, _ = seeded
    unique, total = await conn.fetchrow("SELECT count(DISTINCT customer_email), count(*) FROM orders")
    assert unique < total
    assert await conn.fetchval("""SELECT max(n) FROM (SELECT count(*) AS n FROM orders
                                                      GROUP BY customer_email) AS c""") >= 2


async def test_seed_refunds_some_orders_fully_and_some_partly(seeded: Seeded) -> None:
    """~3% refunded in full (status 'refunded') and ~1% partly (still 'completed'), each a bit later."""
    conn, _, _ = seeded
    full = await conn.fetch("SELECT * FROM orders WHERE payment_status = 'refunded'")
    partial = await conn.fetch(
        "SELECT * FROM orders WHERE payment_status = 'completed' AND amount_refunded > 0")
    assert 0.01 * ORDERS < len(full) < 0.06 * ORDERS
    assert 0 < len(partial) < 0.03 * ORDERS
    assert all(r["amount_refunded"] == r["amount_total"] and r["refunded_at"] > r["created_at"] for r in full)
    assert all(0 < r["amount_refunded"] < r["amount_total"] and r["refunded_at"] for r in partial)


async def test_seed_gives_about_one_order_in_five_an_affiliate(seeded: Seeded) -> None:
    """affiliate_id is set on roughly 20% of orders."""
    conn, _, _ = seeded
    share = await conn.fetchval("SELECT avg((affiliate_id IS NOT NULL)::int) FROM orders")
    assert 0.15 < share < 0.25


async def test_seed_leaves_completed_expired_and_recent_pending_checkouts(seeded: Seeded) -> None:
    """One completed session per order, ~35% extra expired, and some pending in the last 30 minutes."""
    conn, run, counts = seeded
    by_status = dict(await conn.fetch("SELECT status, count(*) FROM checkout_sessions GROUP BY 1"))
    assert by_status["completed"] == ORDERS
    assert 0.25 * ORDERS < by_status["expired"] < 0.45 * ORDERS
    pending = await conn.fetch("SELECT created_at FROM checkout_sessions WHERE status = 'pending'")
    assert len(pending) >= 3
    assert all(run.now - dt.timedelta(minutes=30) <= r["created_at"] <= run.now for r in pending)
    assert sum(by_status.values()) == counts.sessions
    orphans = await conn.fetchval("""
        SELECT count(*) FROM orders o LEFT JOIN checkout_sessions s ON s.id = o.checkout_session_id
         WHERE o.payment_status <> 'failed' AND (s.status IS DISTINCT FROM 'completed'
                                                 OR s.completed_at <> o.created_at)""")
    assert orphans == 0


async def test_seed_logs_some_webhooks_a_few_with_errors(seeded: Seeded) -> None:
    """One webhook log per 50 orders, JSON object payloads, errors carrying their last_error."""
    conn, _, _ = seeded
    rows = await conn.fetch("SELECT status, last_error, jsonb_typeof(payload) AS kind FROM webhook_logs")
    assert len(rows) == ORDERS // 50
    assert {r["kind"] for r in rows} == {"object"}
    assert all((r["status"] == "error") == (r["last_error"] is not None) for r in rows)
    assert {r["status"] for r in rows} <= {"processed", "error"}


async def test_seeding_twice_does_not_collide(conn: asyncpg.Connection) -> None:
    """A second run with another token adds its rows next to the first run's."""
    await seed_into(conn, spec(orders=300, token="aaaa"))
    await seed_into(conn, spec(orders=300, token="bbbb"))
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE payment_status <> 'failed'") == 600


# Every index and trigger of the seeded tables: (oid, definition).
SCHEMA_OBJECTS = """
SELECT i.indexrelid::int, pg_get_indexdef(i.indexrelid) FROM pg_index AS i
 WHERE i.indrelid IN ('orders'::regclass, 'checkout_sessions'::regclass, 'payment_failures'::regclass,
                      'webhook_logs'::regclass)
 UNION ALL
SELECT t.oid::int, pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text FROM pg_trigger AS t
 WHERE t.tgrelid IN ('orders'::regclass, 'checkout_sessions'::regclass) AND NOT t.tgisinternal"""


async def test_empty_tables_get_their_indexes_built_after_the_copy(conn: asyncpg.Connection) -> None:
    """Into empty tables the plain indexes and the INSERT rollup triggers are dropped for the COPY and recreated
    as they were (new oids, same definitions, enabled); into tables holding rows nothing is dropped."""
    before = dict(await conn.fetch(SCHEMA_OBJECTS))
    await seed_into(conn, spec(orders=300, token="aaaa"))
    first = dict(await conn.fetch(SCHEMA_OBJECTS))
    assert sorted(first.values()) == sorted(before.values())
    recreated = set(first) - set(before)
    kinds = sorted(first[oid].split()[1] for oid in recreated)
    # keys and unique constraints stay; the 11th index is webhook_logs' partial one of migration 0054
    assert kinds == ["INDEX"] * 11 + ["TRIGGER"] * 3, kinds
    await seed_into(conn, spec(orders=300, token="bbbb"))
    assert dict(await conn.fetch(SCHEMA_OBJECTS)) == first
    invalid = await conn.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid OR NOT indisready")
    assert invalid == 0


async def test_a_load_into_tables_with_rows_locks_nobody_out(conn: asyncpg.Connection) -> None:
    """The emptiness check takes its exclusive locks in a savepoint; finding rows, it lets them go at once, so
    readers of a live store are not locked out for the length of a seed."""
    await seed_into(conn, spec(orders=50, token="aaaa"))
    async with conn.transaction():
        assert await seed_queries.set_aside_if_empty(conn) == []
        held = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()"
                                   " AND mode = 'AccessExclusiveLock' AND locktype = 'relation'")
        assert held == 0


async def test_empty_tables_keep_their_indexes_while_another_client_is_connected(
        dsn: str, conn: asyncpg.Connection) -> None:
    """A running bot would wait on the exclusive locks for the whole seed: with anyone else connected, nothing is
    dropped."""
    before = dict(await conn.fetch(SCHEMA_OBJECTS))
    other = await asyncpg.connect(dsn)
    try:
        await seed_into(conn, spec(orders=300, token="aaaa"))
    finally:
        await other.close()
    assert dict(await conn.fetch(SCHEMA_OBJECTS)) == before
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE payment_status <> 'failed'") == 300


def test_generation_is_deterministic_for_a_seed() -> None:
    """The same spec yields the same rows; another seed yields others."""
    now = dt.datetime(2026, 3, 8, 12, tzinfo=dt.UTC)  # a DST change day in America/New_York
    first = [b.orders for b in generate(spec(orders=400, now=now))]
    assert first == [b.orders for b in generate(spec(orders=400, now=now))]
    assert first != [b.orders for b in generate(spec(orders=400, now=now, seed=8))]


def test_generation_keeps_chunks_bounded() -> None:
    """No chunk holds more than chunk_size successful orders, and together they hold exactly N."""
    batches = list(generate(spec(orders=1_000, chunk_size=100)))
    assert all(0 < b.completed <= 100 for b in batches)
    assert sum(b.completed for b in batches) == 1_000


async def test_cli_seed_loads_into_database_url_and_exits_zero(
        dsn: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse seed --orders 500 --days 3` loads 500 orders, says when the rows are in and it is building
    indexes and rollups (the quiet minute at 10 M), prints a summary and exits 0."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    code = await asyncio.to_thread(main, ["seed", "--orders", "500", "--days", "3"])
    assert code == 0
    said = capsys.readouterr()
    assert "seeded 500 orders" in said.out
    assert said.err.index("500/500 orders (100%)") < said.err.index("building indexes and rollups")
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE payment_status <> 'failed'") == 500


@pytest.mark.parametrize("args", [["--orders", "0"], ["--orders", "10", "--days", "0"], ["--orders", "-5"]])
def test_cli_seed_rejects_counts_below_one(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """--orders and --days below 1 are an argparse usage error (exit 2), named in the message."""
    with pytest.raises(SystemExit) as exit_info:
        main(["seed", *args])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
