"""`salespulse apply`: an inbox worker, a process that applies the webhooks the web processes stored.

A web process answers a webhook once the event is committed in the inbox, and normally applies it itself moments
later; the apply's Python work then shares one core with answering. While a worker runs (it holds INBOX_WORKER,
shared, on a connection of its own), the web processes store every webhook and leave the apply to it: answering
and applying run on two cores. The worker wakes on the inbox's notification (migration 0025), applies everything
waiting, oldest first, in batches (each row deleted in the transaction that applies it, as a web process would),
and looks again every second in case a notification was missed. Without a worker, or when it stops, nothing
changes: the web processes see it gone within a second and apply what they store; what it left is applied as
events left behind (IntakeBatcher's look, 10 s on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

import asyncpg

from bot.alerts.rules_file import load_rules
from bot.clock import utcnow
from bot.config import Settings
from bot.db import DB_UNAVAILABLE, create_pool, database_url, migrate_database, wait_for_database
from bot.delivery.listener import OutboxListener
from bot.intake.batcher import IntakeBatcher
from bot.settings.live import LiveSettings
from bot.stripe.received import rebuild
from queries import inbox, locks

log = logging.getLogger(__name__)

LOOK_EVERY = 1.0  # seconds between looks when no notification came
LOOK_FOR_WORKERS = 1.0  # seconds between a web process's looks for a worker
RETRY_AFTER = 1.0  # seconds before looking again after the database failed


async def announce(conn: asyncpg.Connection, on_notify: Callable[[], None]) -> None:
    """On the worker's own connection: say a worker runs (the shared lock) and listen for stored events."""
    await locks.lock_shared(conn, locks.INBOX_WORKER)
    await inbox.listen(conn, on_notify)


class InboxWorker:
    """Applies every event waiting in the inbox, as soon as it is stored, until cancelled."""

    def __init__(self, batcher: IntakeBatcher, *, dsn: str, look_every: float = LOOK_EVERY) -> None:
        self._batcher = batcher  # made with left_after=0: every stored event is this worker's at once
        self._look_every = look_every
        self._wake = asyncio.Event()
        self.listener = OutboxListener(dsn, on_notify=self._wake.set, subscribe=announce, name="inbox worker")
        self.applied = 0  # events applied since start

    async def run(self) -> None:
        """Announce this worker and apply as events arrive; reconnects (and announces again) after a failure."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.listener.run(), name="inbox-worker-listener")
            group.create_task(self._apply_loop(), name="inbox-worker")

    async def _apply_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._look_every):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while n := await self._batcher.apply_waiting():
                    self.applied += n
            except DB_UNAVAILABLE as exc:
                log.warning("applying stored events failed, looking again in %.0f s: %s", RETRY_AFTER, exc)
                await asyncio.sleep(RETRY_AFTER)
            except Exception:  # a bug: log it and go on, the rows stay in the inbox
                log.exception("applying stored events failed, looking again in %.0f s", RETRY_AFTER)
                await asyncio.sleep(RETRY_AFTER)


async def follow_workers(batcher: IntakeBatcher, pool: asyncpg.Pool, *, every: float = LOOK_FOR_WORKERS) -> None:
    """In a web process, until cancelled: whether an inbox worker runs, looked at every second. While one does,
    the batcher stores every webhook and leaves it to the worker."""
    while True:
        with contextlib.suppress(*DB_UNAVAILABLE):  # nothing is stored meanwhile either: keep what was known
            present = await inbox.workers_present(pool)
            if present != batcher.handing_over:
                log.info("an inbox worker runs: webhooks are stored and left to it" if present else
                         "no inbox worker runs: this process applies the webhooks it stores")
            batcher.handing_over = present
        await asyncio.sleep(every)


async def apply_command(settings: Settings) -> int:
    """`salespulse apply`: run an inbox worker on the store's database until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with database_url(settings.configured_dsn, settings.salespulse_data_dir) as dsn:
        await wait_for_database(dsn)
        await migrate_database(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            live = LiveSettings(settings, load_rules(settings.alert_rules_file))
            await live.reload(pool)  # the store's time zone, as changed from Slack, names the hour in pings
            batcher = IntakeBatcher.for_settings(live.settings, pool=pool, clock=utcnow, rebuild=rebuild,
                                                 left_after=0.0)
            live.on_change(lambda _before, after: setattr(batcher, "tz", after.tz))
            worker = InboxWorker(batcher, dsn=dsn)
            tasks = [asyncio.create_task(worker.run(), name="inbox-worker"),
                     asyncio.create_task(live.run(pool, dsn), name="settings")]
            log.info("inbox worker: applying what the web processes store in the inbox")
            await stop.wait()
            for task in tasks:  # a batch in flight rolls back: its rows stay in the inbox for the next look
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("inbox worker stopped after applying %d events", worker.applied)
        finally:
            await pool.close()
    return 0
