"""Inbox workers (`salespulse apply`): while one runs, the web processes store every webhook and leave the apply to
it; when it stops, they apply what they store again, and nothing it left is lost."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from bot.db import create_pool
from bot.intake.batcher import IntakeBatcher
from bot.intake.worker import InboxWorker
from bot.stripe.received import rebuild
from queries import inbox, locks
from tests.conftest import Bot
from tests.test_inbox import counts
from tests.test_intake_batch import sale, until

ROOT = Path(__file__).resolve().parents[1]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextlib.asynccontextmanager
async def worker(dsn: str, *, look_every: float = 60.0) -> AsyncIterator[InboxWorker]:
    """An inbox worker on its own pool, as `salespulse apply` runs it; by default it only wakes on notifications."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    batcher = IntakeBatcher(pool=pool, tz=dt.UTC, clock=now, rebuild=rebuild, left_after=0.0)  # type: ignore[arg-type]
    running = InboxWorker(batcher, dsn=dsn, look_every=look_every)
    task = asyncio.create_task(running.run())
    try:
        await asyncio.wait_for(running.listener.listening.wait(), 10)
        yield running
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def handing_over(bot: Bot) -> int:
    return int(bot.deps.intake.handing_over)


async def outcomes(answers: list[Any]) -> list[tuple[int, str]]:
    return [(a.status, (await a.json())["outcome"]) for a in answers]


async def test_a_worker_applies_what_the_web_stores(bot: Bot, dsn: str) -> None:
    """With a worker running, each webhook is answered 202 once stored and applied once, by the worker, woken by
    the inbox's notification (it would look on its own only after a minute); the web keeps none of them."""
    async with worker(dsn) as running:
        await until(lambda: handing_over(bot), 1, within=5)
        answers = [await bot.stripe(sale(n)) for n in range(5)]
        assert await outcomes(answers) == [(202, "queued")] * 5
        assert bot.deps.intake.waiting == 0  # left to the worker, not kept to apply here
        await until(lambda: bot.deps.pool.fetchval("SELECT count(*) FROM orders"), 5, within=5)
        assert await counts(bot.deps.pool) == (5, 5, 5, 0)
        assert running.applied == 5
        again = await bot.stripe(sale(0))  # a redelivery: stored, then found a duplicate by the worker
        assert (again.status, (await again.json())["outcome"]) == (202, "queued")
        await until(lambda: bot.deps.pool.fetchval("SELECT count(*) FROM webhook_inbox"), 0, within=5)
        assert await counts(bot.deps.pool) == (5, 5, 5, 0)
    await until(lambda: handing_over(bot), 0, within=5)
    answer = await bot.stripe(sale(9))  # no worker: applied here, at once, as before
    assert (answer.status, (await answer.json())["outcome"]) == (200, "processed")
    assert await counts(bot.deps.pool) == (6, 6, 6, 0)


async def test_what_a_stopped_worker_left_is_applied_and_nothing_twice(bot: Bot, dsn: str) -> None:
    """A worker that holds its place but applies nothing (stuck, then killed): the webhooks stay in the inbox,
    answered 202; once it is gone the web applies what it stores again, and the rows it left are taken as left
    behind, each applied once."""
    held = await asyncpg.connect(dsn)
    try:
        await locks.lock_shared(held, locks.INBOX_WORKER)
        await until(lambda: handing_over(bot), 1, within=5)
        assert await outcomes([await bot.stripe(sale(n)) for n in range(3)]) == [(202, "queued")] * 3
        assert await counts(bot.deps.pool) == (0, 0, 0, 3)
    finally:
        await held.close()  # the worker dies: its lock goes with its connection
    await until(lambda: handing_over(bot), 0, within=5)
    assert await outcomes([await bot.stripe(sale(3))]) == [(200, "processed")]
    other = IntakeBatcher(pool=bot.deps.pool, tz=dt.UTC, clock=now, rebuild=rebuild, left_after=0.0)  # type: ignore[arg-type]
    assert await other.apply_waiting() == 3  # as the web's look for rows left behind takes them, 10 s on
    assert await counts(bot.deps.pool) == (4, 4, 4, 0)


async def test_two_workers_and_the_web_apply_each_event_once(bot: Bot, dsn: str) -> None:
    """300 sales, 20 at a time, three of them twice, with two workers taking the inbox: one order, one log row and
    one ping per sale."""
    async with worker(dsn) as first, worker(dsn, look_every=0.05) as second:
        await until(lambda: handing_over(bot), 1, within=5)
        events = [sale(n) for n in range(300)] + [sale(n) for n in (7, 70, 170)]
        gate = asyncio.Semaphore(20)

        async def send(event: dict[str, Any]) -> int:
            async with gate:
                return int((await bot.stripe(event)).status)

        assert set(await asyncio.gather(*(send(e) for e in events))) == {202}
        await until(lambda: bot.deps.pool.fetchval("SELECT count(*) FROM webhook_inbox"), 0, within=20)
        assert await counts(bot.deps.pool) == (300, 300, 300, 0)
        assert first.applied + second.applied == len(events)  # duplicates included: each taken by one worker


async def test_salespulse_apply_runs_until_sigterm(dsn: str, tmp_path: Path) -> None:
    """The command: it says it runs (workers_present), applies what is stored in the inbox — here by a web process
    that is not running any more — and on SIGTERM stops at once with status 0, and says so."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT),
           "DATABASE_URL": dsn, "SLACK_BOT_TOKEN": "xoxb-worker", "SLACK_SIGNING_SECRET": "x"}
    log = tmp_path / "apply.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "apply", cwd=tmp_path, env=env,
                                                    stdout=out, stderr=out)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await until(lambda: inbox.workers_present(pool), True, within=30)  # type: ignore[arg-type]
        events = [sale(n) for n in range(4)]
        await inbox.store(pool, [inbox.Received("stripe", "webhook", e["id"], json.dumps(e)) for e in events])
        await until(lambda: pool.fetchval("SELECT count(*) FROM orders"), 4, within=10)
        assert await counts(pool) == (4, 4, 4, 0)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0, log.read_text()
        assert not await inbox.workers_present(pool)
        assert "stopped after applying 4 events" in log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await pool.close()


async def test_a_worker_is_its_lock(dsn: str) -> None:
    """workers_present() sees the shared INBOX_WORKER lock, and no other advisory lock."""
    conn = await asyncpg.connect(dsn)
    try:
        assert not await inbox.workers_present(conn)
        await locks.lock_shared(conn, locks.STRIPE_SYNC)
        assert not await inbox.workers_present(conn)
        await locks.lock_shared(conn, locks.INBOX_WORKER)
        assert await inbox.workers_present(conn)
    finally:
        await conn.close()
