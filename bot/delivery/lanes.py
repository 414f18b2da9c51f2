"""Delivery lanes: each channel's pass runs in a task of its own, so a slow Slack answer in one channel (a post
answered after 6 s, a look-up paging through history) holds that channel alone: alerts are not kept behind a sales
post, and each channel keeps its own pace."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from bot.db import DB_UNAVAILABLE
from queries import outbox as q

log = logging.getLogger(__name__)


class ChannelLanes:
    """At most one pass per channel at a time; a channel found due while its pass runs is looked at again after it
    (what that pass read may predate what made it due)."""

    def __init__(self, pool: asyncpg.Pool, *, deliver: Callable[[str], Awaitable[int]],
                 wake: Callable[[dt.timedelta], None]) -> None:
        self._pool = pool
        self._deliver = deliver  # one pass over a channel (DeliveryWorker._deliver_channel)
        self._wake = wake  # look again after this long
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    async def dispatch(self) -> None:
        """Start a pass for every channel with due messages that has none running; wait for none of them."""
        for channel in await q.due_channels(self._pool):
            if channel in self._running:
                self._again.add(channel)
            else:
                self._running[channel] = asyncio.create_task(self._pass(channel), name=f"delivery-{channel}")
        # A message queued to go out later (a sale ping settling, a retry) notifies nobody when its time comes.
        if (wait := await q.next_due_in(self._pool)) is not None:
            self._wake(dt.timedelta(seconds=wait))

    async def _pass(self, channel: str) -> None:
        try:
            await self._deliver(channel)
        except DB_UNAVAILABLE as exc:  # not the worker's business to crash over: the fallback poll retries
            log.warning("outbox unreachable, retrying: %s", exc)
        except Exception:  # one bad pass must not end the channel's deliveries: the fallback poll retries
            log.exception("delivery pass for %s failed; retrying", channel)
        finally:
            del self._running[channel]
            if channel in self._again:
                self._again.discard(channel)
                self._wake(dt.timedelta(0))

    async def close(self) -> None:
        """Stop every running pass (shutdown: an attempt cut short is looked up by the next one, as after a crash)."""
        running = list(self._running.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
