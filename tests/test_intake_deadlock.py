"""A deadlock is PostgreSQL's "try again", not a bug: the intake retries the event, and if it deadlocks on every
try the sender hears 503 (and retries later), never 500, and nothing is half stored.

The deadlocks are real: a second connection holds one of the sale's payment locks with a session advisory lock
(the same key space as the intake's transaction locks), waits until the intake holds the other and waits for it,
then asks for that one too. PostgreSQL breaks the cycle by aborting the intake's transaction, the waiter with the
shorter deadlock_timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import ClientResponse

from bot.intake.batcher import EVENT_TRIES
from tests.conftest import Bot
from tests.test_intake_batch import BLOCKED, sale, until


@pytest.fixture
async def rival(bot: Bot) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own that never detects the deadlock itself: the intake's transaction is the victim."""
    async with bot.deps.pool.acquire() as conn:
        await conn.execute("SET deadlock_timeout = '60s'")
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock_all()")
            await conn.execute("RESET deadlock_timeout")


async def payment_keys(conn: asyncpg.Connection, n: int) -> list[int]:
    """sale(n)'s two payment lock keys, in the order the intake takes them."""
    return sorted(await conn.fetchval("SELECT array_agg(hashtextextended(r, 0)) FROM unnest($1::text[]) AS r",
                                      [f"cs_p{n}", f"pi_p{n}"]))


async def deadlocked(bot: Bot, rival: asyncpg.Connection, n: int, times: int) -> asyncio.Task[ClientResponse]:
    """Send sale(n) and deadlock the intake's transactions for it `times` times in a row; the rival keeps the
    second key until the test lets it go. The request's task."""
    first, second = await payment_keys(rival, n)
    await rival.execute("SELECT pg_advisory_lock($1)", second)
    answer = asyncio.create_task(bot.stripe(sale(n)))
    for _ in range(times):
        await until(lambda: rival.fetchval(BLOCKED), 1)  # the intake holds `first` and waits for `second`
        await rival.execute("SELECT pg_advisory_lock($1)", first)  # granted once PostgreSQL aborts the intake's
        await rival.execute("SELECT pg_advisory_unlock($1)", first)
    return answer


async def stored(pool: asyncpg.Pool) -> tuple[int, int]:
    """(orders, webhook_logs)"""
    row = await pool.fetchrow("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM webhook_logs)")
    return row[0], row[1]


async def test_an_event_that_deadlocks_again_is_retried_and_stored_once(bot: Bot, rival: asyncpg.Connection) -> None:
    """The batch deadlocks, then its redo: still one 200 "processed" and one order."""
    answer = await deadlocked(bot, rival, 1, times=2)
    await rival.execute("SELECT pg_advisory_unlock_all()")
    response = await answer
    assert (response.status, (await response.json())["outcome"]) == (200, "processed")
    assert await stored(bot.deps.pool) == (1, 1)


async def test_an_event_that_deadlocks_on_every_try_is_a_503_and_stores_nothing(
        bot: Bot, rival: asyncpg.Connection) -> None:
    """Every try deadlocks: 503 with "retry later" (not 500), nothing kept; Stripe's retry then goes through."""
    answer = await deadlocked(bot, rival, 2, times=1 + EVENT_TRIES)  # the batch, then each try of it alone
    response = await answer
    assert response.status == 503
    assert "retry later" in (await response.json())["error"]
    assert await stored(bot.deps.pool) == (0, 0)
    await rival.execute("SELECT pg_advisory_unlock_all()")
    retried = await bot.stripe(sale(2))
    assert (retried.status, (await retried.json())["outcome"]) == (200, "processed")
    assert await stored(bot.deps.pool) == (1, 1)
