"""A LISTEN on a connection of its own, so every replica hears every notification (an enqueue, a settings change),
reconnected whenever that connection drops (a PostgreSQL restart, a terminated backend, a dead network)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from bot.db import DB_UNAVAILABLE
from queries import health

log = logging.getLogger(__name__)

# A connection can die without a word (a host gone, a NAT entry expired): a ping this often finds out. Until
# then the worker's fallback poll keeps delivering, only later.
KEEPALIVE_SECONDS = 15.0
PING_TIMEOUT_SECONDS = 5.0
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0
_CONNECTION_ERRORS = (*DB_UNAVAILABLE, asyncpg.PostgresError)


Subscribe = Callable[[asyncpg.Connection], Awaitable[None]]  # LISTENs on the connection, with its own callback


class NotifyListener:
    """Listens with `subscribe` (queries.outbox.listen: whenever a transaction that queued messages commits, on any
    replica; queries.settings.listen: a settings change), and calls `on_notify` once (re)connected, for whatever
    was announced while nobody listened. One connection serves more channels with `also()`."""

    def __init__(self, dsn: str, *, on_notify: Callable[[], None], subscribe: Subscribe,
                 keepalive: float = KEEPALIVE_SECONDS, name: str = "outbox listener") -> None:
        self._dsn = dsn
        self._on_notify = on_notify
        self._keepalive = keepalive
        self._subscribe = subscribe
        self._name = name
        self.pid: int | None = None  # the listening backend while connected; tests terminate it on purpose
        self.listening = asyncio.Event()  # set while LISTEN is in force
        self._also: list[tuple[Subscribe, Callable[[], None]]] = []

    def also(self, subscribe: Subscribe, on_notify: Callable[[], None]) -> None:
        """Listen with `subscribe` too, on the same connection, calling `on_notify` once (re)connected; in force from
        the next (re)connection, so add it before `run()`."""
        self._also.append((subscribe, on_notify))

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with a growing delay while PostgreSQL is unreachable."""
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
            except _CONNECTION_ERRORS as exc:
                log.warning("%s cannot connect (%s); retrying in %.1f s", self._name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            delay = RECONNECT_FIRST_SECONDS
            try:
                await self._listen(conn)
                log.warning("%s lost its connection; reconnecting", self._name)
            except _CONNECTION_ERRORS as exc:
                log.warning("%s lost its connection (%s); reconnecting", self._name, exc)
            finally:
                self.listening.clear()
                self.pid = None
                conn.terminate()  # nothing to flush on a listening connection; never blocks
            await asyncio.sleep(delay)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """Listen on `conn` and return once it has closed (or raise when a keep-alive ping fails)."""
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        await self._subscribe(conn)
        for subscribe, _ in self._also:
            await subscribe(conn)
        self.pid = conn.get_server_pid()
        self.listening.set()
        # Messages queued while nobody listened (start-up, the reconnect gap) notified no one: look now.
        self._on_notify()
        for _, on_notify in self._also:
            on_notify()
        while not closed.is_set():
            try:
                async with asyncio.timeout(self._keepalive):  # not wait_for: see DeliveryWorker._loop
                    await closed.wait()
            except TimeoutError:
                async with asyncio.timeout(PING_TIMEOUT_SECONDS):
                    await health.ping(conn)
