"""Delivery lanes: each channel's pass runs in a task of its own, so a slow Slack answer in one channel (a post
answered after 6 s, a look-up paging through history) holds that channel alone: alerts are not kept behind a sales
post, and each channel keeps its own pace. At shutdown a call to Slack under way is let finish and its answer recorded
(FinishingSender)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import asyncpg

from bot.db import DB_UNAVAILABLE
from bot.delivery.senders import Lookup, Sender, SendResult
from queries import outbox as q

log = logging.getLogger(__name__)

# How long shutdown waits for a call to Slack under way: a call's own timeout is 10 s (bot/app.py, WebhookSender).
FINISH_WITHIN = dt.timedelta(seconds=12)
# How long shutdown waits for a pass whose call was answered to record the answer: a few statements.
RECORD_WITHIN = dt.timedelta(seconds=5)


class FinishingSender:
    """The sender as the worker's passes use it. At shutdown (`stopping`) a call under way is not cut short but
    waited for (at most FINISH_WITHIN), so its pass records the answer before the worker stops, and no call starts:
    a post cut short after Slack took it stays pending, and an incoming webhook, which cannot be read back, would
    post it again at the next start. A pass whose call was answered is let record it (`answered`, ChannelLanes.close).
    Any other cancel (a crash, as tests stand one in) cuts the call short."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self.supports_updates = sender.supports_updates
        self.stopping = False
        self._answered: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()  # passes recording an answer

    def answered(self, task: asyncio.Task[Any]) -> bool:
        """Whether the pass running in `task` has had an answer from Slack (it is recording it, or done)."""
        return task in self._answered

    async def post(self, channel: str, payload: Mapping[str, Any], *, thread_ts: str | None = None,
                   ref: int | None = None, channel_id: str | None = None) -> SendResult:
        return await self._finish(self._sender.post(channel, payload, thread_ts=thread_ts, ref=ref,
                                                    channel_id=channel_id))

    async def update(self, channel: str, *, channel_id: str, ts: str, payload: Mapping[str, Any]) -> SendResult:
        return await self._finish(self._sender.update(channel, channel_id=channel_id, ts=ts, payload=payload))

    async def find(self, *, channel_id: str, ref: int, since: float, thread_ts: str | None = None) -> Lookup:
        """A look-up only reads: cut short at shutdown, it is done again at the next start."""
        return await self._sender.find(channel_id=channel_id, ref=ref, since=since, thread_ts=thread_ts)

    def channel_id(self, channel: str) -> str | None:
        return self._sender.channel_id(channel)

    async def _finish(self, call: Coroutine[Any, Any, SendResult]) -> SendResult:
        if self.stopping:  # nothing new goes out: what is not sent stays pending for the next start
            call.close()
            raise asyncio.CancelledError
        sending = asyncio.ensure_future(call)
        try:
            return self._answer(await asyncio.shield(sending))
        except asyncio.CancelledError:
            if not self.stopping:
                sending.cancel()
                raise
        try:
            done, _ = await asyncio.wait({sending}, timeout=FINISH_WITHIN.total_seconds())
        finally:
            if not sending.done():  # past the bound, or cancelled again: cut short, looked up at the next start
                sending.cancel()
        if not done:
            raise asyncio.CancelledError
        if (task := asyncio.current_task()) is not None:
            task.uncancel()  # the shutdown's cancel is spent: the pass goes on to record the answer, then ends
        return self._answer(sending.result())

    def _answer(self, result: SendResult) -> SendResult:
        """Slack answered: from here on the pass records the answer, which shutdown lets finish (ChannelLanes.close)."""
        if (task := asyncio.current_task()) is not None:
            self._answered.add(task)
        return result


class ChannelLanes:
    """At most one pass per channel at a time; a channel found due while its pass runs is looked at again after it
    (what that pass read may predate what made it due)."""

    def __init__(self, pool: asyncpg.Pool, *, deliver: Callable[[str], Awaitable[int]],
                 wake: Callable[[dt.timedelta], None], sender: FinishingSender) -> None:
        self._pool = pool
        self._sender = sender  # the passes' sender: told when shutdown begins
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
        """Stop every running pass (shutdown): a call to Slack under way finishes and its answer is recorded first,
        and so is an answer already in (at most RECORD_WITHIN): a cancel landing in its recording would roll it back,
        leaving a post taken by an incoming webhook to go again at the next start. A pass cut short anywhere else
        sent nothing it would not look up next time, as after a crash."""
        running = list(self._running.values())
        self._sender.stopping = True
        try:
            recording = [task for task in running if self._sender.answered(task)]
            for task in running:
                if task not in recording:
                    task.cancel()
            if recording:
                try:
                    await asyncio.wait(recording, timeout=RECORD_WITHIN.total_seconds())
                finally:  # the database does not answer (or shutdown is cut short): looked up at the next start
                    for task in recording:
                        task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        finally:
            self._sender.stopping = False  # drain() may still be called by hand
