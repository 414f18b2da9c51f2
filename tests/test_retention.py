"""Data retention (bot/retention/): old webhook bodies and settled message payloads emptied and old probes and app
events deleted, in chunks committed one by one; young rows, pending and failed messages and posted sale pings left
as they are; a redelivered event and a later event about an old order still behave; one run a day across replicas."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

import handlers
from bot.clock import utcnow
from bot.retention.job import Pruned, Retention, retention_day
from bot.retention.policy import WEBHOOK_BODIES_KEPT
from tests.conftest import Bot, FakeClock, paid_checkout, start_bot
from tests.fakes import FakeSlack
from tests.test_bench_scripts import run_bench
from tests.test_intake import event
from tests.test_intake_versions import story_event

UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=40)
YOUNG = NOW - dt.timedelta(days=10)
BODY = {"id": "evt", "object": "event", "data": {"object": {"description": "x" * 3000}}}
MESSAGE = {"text": "⚠️ Alert", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 2000}}]}
SALE = {"sale": {"order_id": "pi_1", "product": "Course", "customer": "ada***", "affiliate": None,
                 "occurred_at": OLD.isoformat(), "late": False}}


async def no_pause() -> None:
    """Statements back to back."""


def retention(pool: asyncpg.Pool, *, at: dt.datetime = NOW, chunk_rows: int = 2, pause: Any = no_pause) -> Retention:
    """A UTC store's retention at `at`, two rows per statement."""
    return Retention(pool=pool, tz=UTC, clock=lambda: at, chunk_rows=chunk_rows, pause=pause)


async def webhook(pool: asyncpg.Pool, n: int, at: dt.datetime) -> None:
    """A stored Stripe event received at `at`, with a 3 KB body."""
    await pool.execute("INSERT INTO webhook_logs (event_id, event_type, status, payload, created_at, updated_at)"
                       " VALUES ($1, 'checkout.session.completed', 'processed', $2, $3, $3)", f"evt_{n}", BODY, at)


async def message(pool: asyncpg.Pool, key: str, at: dt.datetime, *, kind: str = "alert", status: str = "delivered",
                  op: str = "post", payload: dict[str, Any] = MESSAGE, target: int | None = None) -> int:
    """An outbox row queued at `at`; its id."""
    settled = at if status != "pending" else None
    row_id: int = await pool.fetchval(
        "INSERT INTO outbox (dedupe_key, channel, kind, op, payload, status, created_at, available_at, delivered_at,"
        " slack_channel, slack_ts, target_id) VALUES ($1, 'alerts', $2, $3, $4, $5, $6, $6, $7, 'C1', '1.1', $8)"
        " RETURNING id", key, kind, op, payload, status, at, settled, target)
    return row_id


async def prune(pool: asyncpg.Pool, at: dt.datetime) -> Pruned:
    """Run the day's retention at `at`, 5,000 rows per statement; what it did."""
    pruned = await retention(pool, at=at, chunk_rows=5000).tick()
    assert pruned is not None
    return pruned


async def payloads(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    """Each outbox message's payload, by its dedupe key."""
    return {r["dedupe_key"]: r["payload"] for r in await pool.fetch("SELECT dedupe_key, payload FROM outbox")}


async def test_old_rows_are_pruned_a_chunk_per_transaction_and_young_ones_left(pool: asyncpg.Pool, dsn: str) -> None:
    """Bodies and payloads past 35 days are emptied, probes past 35 and app events past 90 days deleted, two rows
    per statement, each committed before the next (another session sees the walk advance); the rest stays."""
    for n in range(5):
        await webhook(pool, n, OLD)
    for n in (5, 6):
        await webhook(pool, n, YOUNG)
    await message(pool, "alert:1:1:fire", OLD)
    sale = await message(pool, "sale:pi_1", OLD, kind="sale", payload=SALE)
    await message(pool, "sale:pi_1:edit:1", OLD, kind="sale", op="update", payload=SALE, target=sale)
    await message(pool, "sale:pi_2", OLD, kind="sale", status="coalesced", payload=SALE)
    await message(pool, "failure:evt_f", OLD, kind="failure", status="failed")
    await message(pool, "alert:2:1:fire", YOUNG)
    for at in (OLD, OLD, OLD, YOUNG):
        await pool.execute("INSERT INTO site_probes (url, checked_at, ok) VALUES ('https://shop', $1, true)", at)
    for kind, days in (("error", 100), ("error", 95), ("error", 80), ("sync_failure", 91)):
        await pool.execute("INSERT INTO app_events (kind, message, occurred_at, received_at)"
                           " VALUES ($1, 'boom', $2, $2)", kind, NOW - dt.timedelta(days=days))
    # Reported today, though it happened long ago (a backlog flushed): /errors and the alerts count it today, so it
    # stays, and its id dedupes a resend.
    await pool.execute("INSERT INTO app_events (kind, message, occurred_at, received_at) VALUES ('sync_failure',"
                       " 'late', $1, $2)", NOW - dt.timedelta(days=100), NOW - dt.timedelta(minutes=5))
    other = await asyncpg.connect(dsn)
    seen: list[int] = []

    async def pause() -> None:
        seen.append(await other.fetchval("SELECT count(*) FROM webhook_logs WHERE payload = '{}'"))

    try:
        pruned = await retention(pool, pause=pause).tick()
    finally:
        await other.close()
    assert pruned is not None and pruned.chunks == 11  # 3 + 3 walking, 2 + 2 + 1 deleting
    assert (pruned.webhook_bodies, pruned.message_payloads, pruned.site_probes, pruned.app_events) == (5, 3, 3, 3)
    assert seen[:2] == [2, 4]  # committed chunk by chunk, not at the end
    bodies = {r["event_id"]: r["payload"] for r in await pool.fetch("SELECT event_id, payload FROM webhook_logs")}
    assert bodies == {**{f"evt_{n}": {} for n in range(5)}, "evt_5": BODY, "evt_6": BODY}
    assert await payloads(pool) == {"alert:1:1:fire": {}, "sale:pi_1": SALE, "sale:pi_1:edit:1": {}, "sale:pi_2": {},
                                    "failure:evt_f": MESSAGE, "alert:2:1:fire": MESSAGE}
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE slack_ts IS NULL") == 0  # rows and addresses kept
    assert await pool.fetchval("SELECT count(*) FROM site_probes") == 1
    assert sorted(r["message"] for r in await pool.fetch("SELECT message FROM app_events")) == ["boom", "late"]


async def test_the_next_run_goes_on_from_where_the_last_one_stopped(pool: asyncpg.Pool) -> None:
    """A month later only the rows that have aged since are read: the first run's are not updated again."""
    for n, at in enumerate((OLD, OLD, YOUNG, NOW)):
        await webhook(pool, n, at)
    assert await retention(pool).tick() == Pruned(2, 0, 0, 0, 6)
    month_later = NOW + dt.timedelta(days=31)  # YOUNG is 41 days old by then, NOW 31
    assert await retention(pool, at=month_later).tick() == Pruned(1, 0, 0, 0, 5)
    bodies = [r["payload"] for r in await pool.fetch("SELECT payload FROM webhook_logs ORDER BY id")]
    assert bodies == [{}, {}, {}, BODY]
    assert await pool.fetchval("SELECT webhook_logs_upto FROM retention_state") == 3


async def test_a_pending_message_is_left_until_settled_and_a_failed_one_is_never_touched(pool: asyncpg.Pool) -> None:
    """A message still pending after 35 days (its channel refused for a month) is left as it is and the walk goes on
    past it, but its mark stays before it: once the message is delivered, the next run empties it (and writes no row
    twice). A failed message keeps its text."""
    first = await message(pool, "alert:1:1:fire", OLD)
    waiting = await message(pool, "alert:1:2:update", OLD, status="pending", op="update", target=first)
    await message(pool, "alert:2:1:fire", OLD)
    await message(pool, "failure:evt_f", OLD, kind="failure", status="failed")
    await message(pool, "alert:3:1:fire", OLD)
    assert await retention(pool).tick() == Pruned(0, 3, 0, 0, 7)
    assert await payloads(pool) == {"alert:1:1:fire": {}, "alert:1:2:update": MESSAGE, "alert:2:1:fire": {},
                                    "failure:evt_f": MESSAGE, "alert:3:1:fire": {}}
    assert await pool.fetchval("SELECT outbox_upto FROM retention_state") == first
    await pool.execute("UPDATE outbox SET status = 'delivered', delivered_at = $2 WHERE id = $1", waiting, NOW)
    next_day = NOW + dt.timedelta(days=1)
    assert await retention(pool, at=next_day).tick() == Pruned(0, 1, 0, 0, 7)
    assert await payloads(pool) == {"alert:1:1:fire": {}, "alert:1:2:update": {}, "alert:2:1:fire": {},
                                    "failure:evt_f": MESSAGE, "alert:3:1:fire": {}}
    assert await pool.fetchval("SELECT outbox_upto FROM retention_state") > waiting


def test_a_day_s_run_is_due_from_four_in_the_morning_local_time() -> None:
    """Before 04:00 local the day before's run is the one due (so it is not run again); from 04:00, the day's."""
    assert retention_day(dt.datetime(2026, 3, 10, 7, 59, tzinfo=dt.UTC), NY) == dt.date(2026, 3, 9)  # 03:59 EDT
    assert retention_day(dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC), NY) == dt.date(2026, 3, 10)
    assert retention_day(dt.datetime(2026, 3, 11, 3, 0, tzinfo=dt.UTC), NY) == dt.date(2026, 3, 10)  # 23:00


async def test_two_replicas_run_the_day_s_retention_once(dsn: str, fake_slack: FakeSlack) -> None:
    """Two bots on one database ticking at the same moment: one runs the day's retention, the other skips, and
    neither runs it again that day; the next day's runs once from 04:00."""
    clock = FakeClock(dt.datetime(2026, 3, 10, 8, 30, tzinfo=dt.UTC))  # 04:30 in New York
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as a, \
            start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as b:
        async def both() -> list[Pruned | None]:
            return list(await asyncio.gather(*(Retention.from_deps(bot.deps).tick() for bot in (a, b, a, b))))

        assert sum(r is not None for r in await both()) == 1
        clock.advance(hours=12)
        assert await both() == [None] * 4
        clock.now = dt.datetime(2026, 3, 11, 7, 59, tzinfo=dt.UTC)  # 03:59: still the 10th's
        assert await both() == [None] * 4
        clock.advance(minutes=1)
        assert sum(r is not None for r in await both()) == 1
        assert await a.deps.pool.fetchval("SELECT ran_on FROM retention_state") == dt.date(2026, 3, 11)


async def test_every_replica_schedules_the_hourly_tick(bot: Bot) -> None:
    """The composition root adds the retention job with the other periodic jobs."""
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
    handlers.add_jobs(scheduler, bot.deps, dsn=bot.deps.dsn)
    job = scheduler.get_job("retention")
    assert job is not None and job.name == "data retention" and job.trigger.interval == dt.timedelta(hours=1)


def later() -> dt.datetime:
    """Past the webhook bodies' period: everything stored by now is old."""
    return utcnow() + WEBHOOK_BODIES_KEPT + dt.timedelta(days=1)


async def test_an_old_event_redelivered_after_its_body_went_is_still_a_duplicate(bot: Bot) -> None:
    """Stripe (or the Events API) bringing an event again after its body was emptied: answered as a duplicate, no
    second order, no second ping, and the row is not stored again."""
    sale = paid_checkout(1, utcnow() - dt.timedelta(minutes=1), product="Course")
    assert (await bot.stripe(sale)).status == 200
    await bot.drain()
    assert (await prune(bot.deps.pool, later())).webhook_bodies == 1
    resp = await bot.stripe(sale)
    assert resp.status == 200 and (await resp.json())["outcome"] == "duplicate"
    await bot.drain()
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM orders") == 1
    assert len(bot.slack_api.posted()) == 1
    assert await bot.deps.pool.fetchval("SELECT payload FROM webhook_logs") == {}


@pytest.fixture
async def settling_bot(dsn: str, fake_slack: FakeSlack) -> Any:
    """A bot whose unnamed sale pings wait for the event naming them (the test ends the wait)."""
    async with start_bot(dsn, fake_slack, SALE_SETTLE_SECONDS="600") as running_bot:
        yield running_bot


async def test_a_refund_and_a_late_name_for_an_old_sale_still_work_after_pruning(settling_bot: Bot) -> None:
    """A sale pinged before its product was named, then pruned: its ping keeps what it showed, so a refund of the
    order a month later is pinged without touching the sale's message, and the checkout session that names the
    product still edits that message in place (its Slack address kept)."""
    bot = settling_bot
    assert (await bot.stripe(story_event("basil", "one_off", "payment_intent.succeeded"))).status == 200
    await bot.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    await bot.drain(ignore_pace=True)
    [ping] = bot.slack_api.messages
    assert (await prune(bot.deps.pool, later())).webhook_bodies == 1
    refund = event("pay-rails/charge.refunded.json", event_id="evt_refund_late", type_="charge.refunded",
                   created=int(utcnow().timestamp()), id="ch_3OneOffStory0001", payment_intent="pi_3OneOffStory0001",
                   amount=4900, amount_captured=4900, amount_refunded=1000, currency="usd")
    assert (await bot.stripe(refund)).status == 200
    await bot.drain(ignore_pace=True)
    assert len(bot.slack_api.posted()) == 2 and "refund" in bot.slack_api.posted()[1]["text"].lower()
    assert bot.slack_api.posted("chat.update") == []  # the sale's message shows what it did: nothing to edit
    assert (await bot.stripe(story_event("basil", "one_off", "checkout.session.completed"))).status == 200
    await bot.drain(ignore_pace=True)
    [edit] = bot.slack_api.posted("chat.update")
    assert (edit["channel"], edit["ts"]) == (ping["channel_id"], ping["ts"]) and "Async Python course" in str(edit)


def test_the_measuring_script_runs(server_dsn: str, tmp_path: Path) -> None:
    """bench/retention.py, whose figures the README gives, still runs (at a size where they mean nothing)."""
    out = run_bench("retention.py", "--sales", "60", "--database-url", server_dsn, results=tmp_path)
    assert "183 webhook bodies and" in out and "| `webhook_logs` |" in out, out
