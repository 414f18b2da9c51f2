"""The intake's inbox: webhooks that arrive while every writer is busy are stored as received, answered 202, and
applied once — by this process, or by another when this one stopped before applying them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from bot.intake.batcher import IntakeBatcher
from bot.intake.fold import Fold
from bot.stripe.received import rebuild, submission
from queries import inbox, intake_new
from queries.intake_log import LogRow
from tests.conftest import Bot
from tests.fakes import FakeSlack
from tests.reference import STRIPE_DIR
from tests.test_intake_batch import sale, until, writers_held_by
from tests.test_replicas import start_replica

UTC = ZoneInfo("UTC")


@contextlib.asynccontextmanager
async def writers_held(bot: Bot) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Both intake writers stuck on a payment lock (one sale each); the two requests' tasks are yielded and
    answered once the block ends."""
    async with bot.deps.pool.acquire() as lock, writers_held_by(lock, bot.stripe) as held:
        yield held


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int, int]:
    """(orders, processed webhook_logs, sale outbox rows, inbox rows)."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM webhook_logs WHERE status = 'processed'),"
        "       (SELECT count(*) FROM outbox WHERE kind = 'sale'), (SELECT count(*) FROM webhook_inbox)")
    return (row[0], row[1], row[2], row[3])


async def test_busy_writers_store_webhooks_answer_202_and_apply_them_once(bot: Bot) -> None:
    """Eight sales (two redelivered) while both writers are held: 202 each, stored; applied once the writers free."""
    events = [sale(n) for n in range(8)]
    async with writers_held(bot) as held:
        answers = [await bot.stripe(e) for e in events + events[:2]]
        assert [(a.status, (await a.json())["outcome"]) for a in answers] == [(202, "queued")] * 10
        # Durable before the answer: the bodies are in the inbox, nothing is applied yet.
        assert await counts(bot.deps.pool) == (0, 0, 0, 10)
        stored = await bot.deps.pool.fetch("SELECT event_id, via, body FROM webhook_inbox ORDER BY id")
        assert [r["event_id"] for r in stored] == [e["id"] for e in events + events[:2]]
        assert json.loads(stored[0]["body"]) == events[0] and stored[0]["via"] == "webhook"
    assert {(await t).status for t in held} == {200}
    await until(lambda: asyncio.sleep(0, bot.deps.intake.pending), 0)
    assert await counts(bot.deps.pool) == (10, 10, 10, 0)  # 8 + the 2 blockers; the redeliveries added nothing
    # /metrics: answered "queued", then counted again by what applying them did.
    sample = bot.deps.metrics.registry.get_sample_value
    labels = {"source": "stripe", "type": "checkout.session.completed"}
    assert sample("salespulse_webhooks_received_total", {**labels, "outcome": "queued"}) == 10
    assert sample("salespulse_webhooks_applied_total", {**labels, "outcome": "processed"}) == 8
    assert sample("salespulse_webhooks_applied_total", {**labels, "outcome": "duplicate"}) == 2
    duplicate = await bot.stripe(events[0])  # writers free again: applied before the answer, which says so
    assert (duplicate.status, (await duplicate.json())["outcome"]) == (200, "duplicate")
    await bot.drain()
    pinged = " ".join(m["text"] or "" for m in bot.slack_api.messages)
    assert "New Sale" in pinged or "new sales" in pinged


async def test_bad_webhooks_are_refused_before_the_inbox(bot: Bot) -> None:
    """A malformed event is a 400 even while the writers are busy: nothing is stored."""
    broken = sale(1)
    del broken["data"]["object"]
    async with writers_held(bot):
        answer = await bot.stripe(broken)
        assert answer.status == 400 and "malformed event" in (await answer.json())["error"]
        assert (await bot.stripe(b"{not json")).status == 400
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM webhook_inbox") == 0


async def test_events_left_behind_are_applied_by_another_process(bot: Bot) -> None:
    """Rows a stopped process stored (body only: its parsed events died with it) are parsed again and applied by
    another batcher once they are older than `left_after`; rows younger than that are left to their owner."""
    events = [sale(n) for n in range(5)]
    bodies = [json.dumps(e) for e in events]
    await inbox.store(bot.deps.pool, [inbox.Received("stripe", "webhook", e["id"], b)
                                      for e, b in zip(events, bodies, strict=True)])
    other = IntakeBatcher(pool=bot.deps.pool, tz=UTC, clock=lambda: dt.datetime.now(dt.UTC), rebuild=rebuild,
                          left_after=0.3)
    assert await other._apply_left() == 0  # too young: their process may still be applying them
    task = asyncio.create_task(other.run())
    try:
        await until(lambda: bot.deps.pool.fetchval("SELECT count(*) FROM webhook_inbox"), 0, within=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await counts(bot.deps.pool) == (5, 5, 5, 0)


async def test_a_row_is_applied_by_one_process_only(bot: Bot) -> None:
    """Two batchers taking the same stored rows at once: every row is taken once, and every event applied once."""
    subs = [submission(json.dumps(sale(n))) for n in range(40)]
    ids = await inbox.store(bot.deps.pool, [inbox.Received(s.source, s.via, s.event_id, s.body) for s in subs])
    batchers = [IntakeBatcher(pool=bot.deps.pool, tz=UTC, clock=lambda: dt.datetime.now(dt.UTC), rebuild=rebuild,
                              left_after=0.0) for _ in range(2)]
    first = batchers[0]._apply_stored(list(zip(ids, subs, strict=True)))  # the owner, with its parsed events
    second = batchers[1]._apply_left()  # another replica, taking them as left behind
    _, taken = await asyncio.gather(first, second)
    assert 0 <= taken <= 40
    assert await counts(bot.deps.pool) == (40, 40, 40, 0)


async def test_the_store_failing_answers_5xx_and_keeps_nothing(bot: Bot) -> None:
    """With the inbox unwritable the sender gets a 5xx (and retries): never a 2xx for an event not stored."""
    async with writers_held(bot):
        await bot.deps.pool.execute("ALTER TABLE webhook_inbox ADD CONSTRAINT refuse CHECK (false) NOT VALID")
        try:
            answer = await bot.stripe(sale(7))
            assert answer.status >= 500
        finally:
            await bot.deps.pool.execute("ALTER TABLE webhook_inbox DROP CONSTRAINT refuse")
    assert await bot.deps.pool.fetchval("SELECT count(*) FROM webhook_logs WHERE event_id = 'evt_p7'") == 0


async def test_health_shows_events_stored_and_not_applied(bot: Bot) -> None:
    """/health names the events answered 202 and not applied yet; nothing when the inbox is empty."""
    assert "Webhook intake" not in json.dumps(await bot.command("/health"))
    async with writers_held(bot):
        for n in range(3):
            assert (await bot.stripe(sale(n))).status == 202
        answer = json.dumps(await bot.command("/health"))
        assert "*Webhook intake* 3 events stored and not applied yet" in answer


async def test_an_event_the_rules_fail_on_is_kept_as_an_error_and_holds_nothing_up(
        bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug the rules hit on one stored event (not a payload error the batch already isolates): the batch is redone
    an event at a time, that event is kept with status 'error' and its reason, the rest are applied."""
    original = Fold.apply

    def apply(self: Fold, index: int, e: Any) -> None:
        if e.event_id == "evt_p2":
            raise RuntimeError("a bug in the rules")
        original(self, index, e)

    monkeypatch.setattr(Fold, "apply", apply)
    subs = [submission(json.dumps(sale(n))) for n in range(5)]
    ids = await inbox.store(bot.deps.pool, [inbox.Received(s.source, s.via, s.event_id, s.body) for s in subs])
    batcher = IntakeBatcher(pool=bot.deps.pool, tz=UTC, clock=lambda: dt.datetime.now(dt.UTC), rebuild=rebuild)
    await batcher._apply_stored(list(zip(ids, subs, strict=True)))
    logs = {r["event_id"]: (r["status"], r["last_error"]) for r in await bot.deps.pool.fetch(
        "SELECT event_id, status, last_error FROM webhook_logs")}
    assert logs.pop("evt_p2") == ("error", "RuntimeError: a bug in the rules")
    assert logs == {f"evt_p{n}": ("processed", None) for n in (0, 1, 3, 4)}
    assert await counts(bot.deps.pool) == (4, 4, 4, 0)


async def test_a_stopping_process_answers_what_it_took_and_applies_what_it_stored(
        dsn: str, fake_slack: FakeSlack, tmp_path: Path) -> None:
    """SIGTERM while both writers are held and five webhooks wait in the inbox: the two requests in flight are still
    answered 200, the five are applied by the stopping process itself (none left for a replica to find 10 s later),
    and it exits cleanly."""
    replica = await start_replica(dsn, fake_slack, tmp_path, 0)

    async def send(evt: dict[str, Any]) -> tuple[int, str]:
        status, answer = await replica.stripe(session, json.dumps(evt).encode())
        return status, answer["outcome"]

    lock = await asyncpg.connect(dsn)
    try:
        async with aiohttp.ClientSession() as session:
            async with writers_held_by(lock, send) as held:
                assert [await send(sale(n)) for n in range(5)] == [(202, "queued")] * 5
                replica.proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)  # the process is stopping, waiting on its two requests in flight
                assert replica.proc.returncode is None
            assert [await t for t in held] == [(200, "processed")] * 2
        assert await asyncio.wait_for(replica.proc.wait(), 20) == 0
        row = await lock.fetchrow("SELECT (SELECT count(*) FROM webhook_inbox) AS inbox,"
                                  "       (SELECT count(*) FROM orders) AS orders")
        assert (row["inbox"], row["orders"]) == (0, 7)
        assert "not applied yet" not in replica.log.read_text()
    finally:
        await lock.close()
        if replica.proc.returncode is None:
            replica.proc.kill()


async def server_has_lz4(db: asyncpg.Connection) -> bool:
    """Whether this PostgreSQL was built with lz4 (the embedded one was not), asked without any migration."""
    try:
        async with db.transaction():
            await db.execute("SET LOCAL default_toast_compression = lz4")
    except asyncpg.InvalidParameterValueError:
        return False
    return True


async def test_event_bodies_are_compressed_with_lz4_where_the_server_has_it(db: asyncpg.Connection) -> None:
    """A PaymentIntent's event (~6 KB) is TOAST-compressed into the inbox and again into webhook_logs: with lz4 where
    the server has it, about half pglz's CPU (migration 0019); with pglz on the embedded PostgreSQL."""
    body = (STRIPE_DIR / "stripe-ruby-mock" / "payment_intent.succeeded.json").read_text()
    [inbox_id] = await inbox.store(db, [inbox.Received("stripe", "webhook", "evt_big", body)])
    logged_row = LogRow("stripe", "evt_big", "payment_intent.succeeded", "processed", body, False, None, "webhook")
    assert await intake_new.log_and_lock(db, [logged_row], []) == {("stripe", "evt_big")}  # as the intake logs it
    stored = await db.fetchval("SELECT pg_column_compression(body) FROM webhook_inbox WHERE id = $1", inbox_id)
    logged = await db.fetchval("SELECT pg_column_compression(payload) FROM webhook_logs WHERE event_id = 'evt_big'")
    method = "lz4" if await server_has_lz4(db) else "pglz"
    assert (stored, logged) == (method, method)
    assert await db.fetchval("SELECT body FROM webhook_inbox WHERE id = $1", inbox_id) == body
