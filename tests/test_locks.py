"""Advisory locks: named in one place, and the Stripe sync's lock never outlives its run, even a failed one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.stripe.job import StripeSyncJob
from queries import locks
from tests.conftest import Bot, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A store with STRIPE_API_KEY pointing at an empty fake Stripe."""
    fake = await FakeStripe().start()
    try:
        async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
            yield bot
    finally:
        await fake.stop()


async def held_elsewhere(dsn: str, key: int) -> bool:
    """Whether some other session holds the session-level lock `key` (tried, and given back, from a new one)."""
    conn = await asyncpg.connect(dsn)
    try:
        if await locks.try_lock(conn, key):
            await locks.unlock(conn, key)
            return False
        return True
    finally:
        await conn.close()


def test_every_lock_key_is_distinct() -> None:
    """Two purposes sharing a key would wait on each other for nothing (or, worse, exclude each other)."""
    keys = [locks.MIGRATION, locks.LEADER, locks.EVALUATION, locks.STRIPE_SYNC]
    assert len(set(keys)) == len(keys)


async def test_sync_lock_is_released_when_the_job_fails_midway(store: Bot, dsn: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The run dies with an unexpected error while holding the lock; afterwards the lock is free and a second
    replica's job takes it and runs."""
    first = StripeSyncJob(store.deps)
    seen_held: list[bool] = []

    async def failing_run(api_key: str) -> None:
        seen_held.append(await held_elsewhere(dsn, locks.STRIPE_SYNC))
        raise RuntimeError("boom, mid-way")

    monkeypatch.setattr(first, "_run", failing_run)
    with pytest.raises(RuntimeError, match="mid-way"):
        await first.tick()
    assert seen_held == [True]
    assert not await held_elsewhere(dsn, locks.STRIPE_SYNC)
    second = StripeSyncJob(store.deps)  # another replica
    assert await second.tick() is not None


async def test_sync_is_skipped_while_another_replica_holds_the_lock(store: Bot, dsn: str) -> None:
    """While another session holds the sync lock the job does nothing; once it is let go, the job runs."""
    other = await asyncpg.connect(dsn)
    try:
        assert await locks.try_lock(other, locks.STRIPE_SYNC)
        assert await StripeSyncJob(store.deps).tick() is None
    finally:
        await other.close()  # closing the session releases its lock
    assert await StripeSyncJob(store.deps).tick() is not None
