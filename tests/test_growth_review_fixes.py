"""A bot left running for years (reviewer's tests, each seen failing before its fix): routine job runs add no log
lines, a key Stripe refuses is said once and asked again hourly, the last-webhook read does not grow with a
polled store's table, and a day's emptied bodies are vacuumed after the retention run (migration 0054)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

import handlers
from bot.cli.main import QUIET_LOGGERS, configure_logging
from bot.retention.job import Retention
from bot.scheduling import JobFailures, create_scheduler
from bot.stripe.open_checkouts import OpenCheckoutsJob
from bot.stripe.settle_job import SettlementJob
from queries import settlements
from queries.health import LAST_WEBHOOK_AT
from queries.stripe_sync import LAST_STRIPE_WEBHOOK
from tests.conftest import FakeClock, paid_checkout, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack

UTC = ZoneInfo("UTC")


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """The log set-up of `salespulse run` (no -v); the loggers it quiets are put back after the test."""
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    configure_logging(verbose=False)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


# --- Log volume: `salespulse run` logs at INFO, and APScheduler logged two INFO lines per job run.

async def test_routine_job_runs_add_no_info_lines(dsn: str, fake_slack: FakeSlack, cli_logging: None,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The scheduler as `salespulse run` builds it, with STRIPE_API_KEY set (fees and discounts every 10 s, sync, open
    checkouts and alerts every minute, reports every 5 min, retention hourly): one round of its jobs, all fine,
    should log nothing at INFO. APScheduler logs two INFO lines per run ("Running job …", "… executed
    successfully"): 2 x 21,912 runs = ~44,000 lines a day, ~16 million a year, in a log that is otherwise quiet."""
    caplog.set_level(logging.INFO)  # the root level `salespulse run` sets
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY="sk_test_x", STRIPE_API_URL="http://127.0.0.1:9") as bot:
        scheduler = create_scheduler(bot.deps.settings.tz, JobFailures())
        handlers.add_jobs(scheduler, bot.deps, dsn=bot.deps.dsn)
        caplog.clear()
        scheduler.start()
        await asyncio.sleep(2)
        per_day = 2 * sum(round(86400 / j.trigger.interval.total_seconds()) for j in scheduler.get_jobs()
                          if hasattr(j.trigger, "interval"))
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.1)
    routine = [r.getMessage() for r in caplog.records
               if r.name.startswith("apscheduler.executors") and r.levelno == logging.INFO]
    assert routine == [], f"{len(routine)} INFO lines from one round of jobs (~{per_day:,} a day): {routine[:4]}"


async def test_a_failing_job_still_reaches_the_log_and_health(cli_logging: None,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Quieted to WARNING, APScheduler still logs a job that raised, and JobFailures logs and keeps it for /health."""
    caplog.set_level(logging.INFO)
    failures = JobFailures()
    scheduler = create_scheduler(UTC, failures)

    async def broken() -> None:
        raise RuntimeError("boom")

    scheduler.add_job(broken, "interval", seconds=60, id="broken", next_run_time=dt.datetime.now(dt.UTC))
    scheduler.start()
    for _ in range(50):
        if failures.recent:
            break
        await asyncio.sleep(0.05)
    scheduler.shutdown(wait=False)
    errors = {(r.name, r.levelno) for r in caplog.records if r.levelno >= logging.ERROR}
    assert [f.job_id for f in failures.recent] == ["broken"] and "boom" in failures.recent[0].error
    assert ("bot.scheduling", logging.ERROR) in errors and ("apscheduler.executors.default", logging.ERROR) in errors


def test_verbose_lets_apscheduler_speak(cli_logging: None) -> None:
    configure_logging(verbose=True)
    assert logging.getLogger("apscheduler").level == logging.NOTSET


# --- A restricted key without a permission README does not require: said once, asked again hourly.

async def test_a_key_without_account_read_is_not_retried_and_logged_every_ten_seconds(
        dsn: str, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """One minute of the fees job's ticks (every 10 s, bot/stripe/settle_job.py) with a key Stripe refuses
    GET /v1/account (403): the refusal is no news after the first time, yet each tick asks Stripe again and logs an
    ERROR — 8,640 ERROR lines a day while nothing is wrong with the store."""
    caplog.set_level(logging.INFO)
    async with FakeStripe(forbidden={"/v1/account"}) as stripe, \
            start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe.url) as bot:
        job = SettlementJob(bot.deps)
        caplog.clear()
        for _ in range(6):  # 60 s of ticks
            await job.tick()
        asks = [r for r in stripe.requests if r.path == "/v1/account"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) <= 1, f"{len(errors)} ERROR lines in one minute: {errors[:2]}"
    assert len(asks) <= 1, f"GET /v1/account asked {len(asks)} times in one minute"


async def test_a_key_without_checkout_sessions_read_is_logged_once_not_every_minute(
        dsn: str, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """README: "A key without that permission only logs it" — it logs an ERROR every minute (1,440 a day), and asks
    Stripe every minute, for as long as the bot runs. Five minutes of ticks here."""
    caplog.set_level(logging.INFO)
    async with FakeStripe(forbidden={"/v1/checkout/sessions"}) as stripe, \
            start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe.url) as bot:
        job = OpenCheckoutsJob(bot.deps)
        caplog.clear()
        for _ in range(5):
            await job.tick()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) <= 1, f"{len(errors)} ERROR lines in five minutes: {errors[:1]}"


async def test_a_refusal_is_a_warning_naming_the_permission_and_is_asked_again_hourly(
        dsn: str, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """Once Account: read is granted, the fees job sees it within the hour: it reads the account again, keeps its
    currency, and says Stripe answers."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC))
    async with FakeStripe(forbidden={"/v1/account"}) as stripe, \
            start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe.url) as bot:
        job = SettlementJob(bot.deps)
        caplog.clear()
        for _ in range(4):  # 12:00 asks, 12:25 and 12:50 wait, 13:15 asks again
            await job.tick()
            clock.advance(minutes=25)
        stripe.forbidden.clear()
        await job.tick()  # 13:40: still waiting
        clock.advance(minutes=35)
        await job.tick()  # 14:15: asks, and is answered
        currency = await settlements.account_currency(bot.deps.pool)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "bot.stripe.settle_job"]
    asks = [r.answered for r in stripe.requests if r.path == "/v1/account"]
    assert asks == [403, 403, 200] and currency == "USD"
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    assert "Account: read" in said[0][1] and "STORE_CURRENCY" in said[0][1] and "hourly" in said[0][1]


# --- Polling alone: "when was the last webhook" must not scan every polled event (migration 0054).

ROWS = 100_000  # ~2 weeks of a 5,000-orders-a-day store's events; a year is ~7 M


async def _rows_read(pool: asyncpg.Pool, sql: str) -> tuple[int, float]:
    """Rows the plan read (returned + removed by filter, over every node) and the time it took, in ms."""
    [plan] = json.loads(await pool.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))

    def walk(node: dict[str, Any]) -> int:
        own = node.get("Actual Rows", 0) * node.get("Actual Loops", 1) + node.get("Rows Removed by Filter", 0)
        return int(own) + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan["Plan"]), plan["Execution Time"]


async def test_last_webhook_read_does_not_scan_every_polled_event(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO webhook_logs (event_id, event_type, status, payload, via, created_at, updated_at)"
        " SELECT 'evt_' || g, 'charge.succeeded', 'processed', '{}'::jsonb, 'events_api',"
        "        now() - make_interval(secs => $1 - g), now() - make_interval(secs => $1 - g)"
        "   FROM generate_series(1, $1) AS g", ROWS)
    await pool.execute("ANALYZE webhook_logs")
    assert await pool.fetchval(LAST_WEBHOOK_AT) is None
    started = time.perf_counter()
    rows, ms = await _rows_read(pool, LAST_WEBHOOK_AT)
    stripe_rows, stripe_ms = await _rows_read(pool, LAST_STRIPE_WEBHOOK)
    assert rows < 1_000 and stripe_rows < 1_000, (
        f"LAST_WEBHOOK_AT read {rows:,} rows ({ms:.0f} ms), LAST_STRIPE_WEBHOOK {stripe_rows:,} ({stripe_ms:.0f} ms)"
        f" of {ROWS:,}: every /health and Home refresh reads the whole table ({time.perf_counter() - started:.1f} s)")


# --- Retention's emptied bodies: reusable after each day's run, however old the table (migration 0054).

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
PER_DAY = 2_000  # events a day (a store of ~500 orders a day: about four events each)
HISTORY_DAYS = 60  # what is older, bodies emptied long ago: two months of running; after a year, 365


async def no_pause() -> None:
    """Statements back to back."""


async def test_a_day_s_emptied_bodies_are_reusable_after_the_run(pool: asyncpg.Pool) -> None:
    """Emptying a ~2 KB body (inline, lz4, migration 0019) leaves a dead row version carrying it in webhook_logs'
    heap until autovacuum visits; by default it waits for 20% of an ever-growing table to be dead."""
    body = json.dumps(paid_checkout(1, NOW))  # a real event, as stored
    await pool.execute(
        "INSERT INTO webhook_logs (event_id, event_type, status, payload, created_at, updated_at)"
        " SELECT 'evt_old_' || g, 'checkout.session.completed', 'processed', '{}'::jsonb, $2, $2"
        "   FROM generate_series(1, $1) AS g", PER_DAY * HISTORY_DAYS, NOW - dt.timedelta(days=100))
    # Earlier runs dealt with them: the walk's mark stands after them.
    await pool.execute("UPDATE retention_state SET webhook_logs_upto = (SELECT max(id) FROM webhook_logs),"
                       " ran_on = $1", (NOW - dt.timedelta(days=1)).date())
    # The day that turns 35 days old tonight, then the 35 days kept (one day's worth stands for them here).
    for name, age in (("due", 36), ("kept", 10)):
        await pool.execute(
            "INSERT INTO webhook_logs (event_id, event_type, status, payload, created_at, updated_at)"
            " SELECT 'evt_' || $3 || g, 'checkout.session.completed', 'processed', $2::text::jsonb, $4, $4"
            "   FROM generate_series(1, $1) AS g", PER_DAY, body, name, NOW - dt.timedelta(days=age))
    await pool.execute("VACUUM ANALYZE webhook_logs")
    inline = await pool.fetchval("SELECT pg_column_size(payload) FROM webhook_logs WHERE event_id = 'evt_due1'")
    toast = await pool.fetchval("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'webhook_logs'")

    pruned = await Retention(pool=pool, tz=UTC, clock=lambda: NOW, pause=no_pause).tick()
    assert pruned is not None and pruned.webhook_bodies == PER_DAY

    # Autovacuum's trigger for this table (https://www.postgresql.org/docs/current/routine-vacuuming.html#AUTOVACUUM):
    # dead rows > autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor * reltuples, the table's own reloptions
    # over the server's settings.
    row = await pool.fetchrow(
        "SELECT c.reltuples::bigint AS tuples, coalesce(c.reloptions, '{}') AS options,"
        "       current_setting('autovacuum_vacuum_threshold')::int AS threshold,"
        "       current_setting('autovacuum_vacuum_scale_factor')::float8 AS scale"
        "  FROM pg_class AS c WHERE c.relname = 'webhook_logs'")
    options = dict(o.split("=", 1) for o in row["options"])
    threshold = int(options.get("autovacuum_vacuum_threshold", row["threshold"]))
    scale = float(options.get("autovacuum_vacuum_scale_factor", row["scale"]))
    trigger = threshold + scale * row["tuples"]
    assert pruned.webhook_bodies > trigger, (
        f"the run left {pruned.webhook_bodies:,} dead rows, each with its {inline}-byte body inline (TOAST table:"
        f" {toast} bytes); autovacuum waits for {trigger:,.0f} (20% of {row['tuples']:,} rows), i.e."
        f" {trigger / PER_DAY:.0f} days of emptied bodies stay on disk beside the 35 kept — after a year"
        f" {0.2 * 365:.0f} days, after three {0.2 * 3 * 365:.0f}")


async def test_the_outbox_is_vacuumed_by_rows_too(pool: asyncpg.Pool) -> None:
    """Its payloads are emptied the same way, and a row version per delivery adds to them."""
    options = await pool.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'outbox'")
    assert {"autovacuum_vacuum_scale_factor=0.0", "autovacuum_vacuum_threshold=5000"} <= set(options or [])
