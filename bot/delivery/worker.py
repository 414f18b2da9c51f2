"""The delivery worker: drains the outbox to Slack, paced per channel, coalescing bursts of sales."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

import asyncpg

from bot.blocks.pings import BurstView, SaleView, burst_message
from bot.db import DB_UNAVAILABLE
from bot.delivery.listener import OutboxListener
from bot.delivery.senders import Sender, SendResult, Status
from bot.metrics import Metrics
from queries import outbox as q

log = logging.getLogger(__name__)

# Slack allows about one message per second per channel:
# https://api.slack.com/apis/rate-limits#posting-messages
CHANNEL_INTERVAL = dt.timedelta(seconds=1)
MAX_BACKOFF = dt.timedelta(minutes=5)
BATCH = 500
# Every replica's listener hears each enqueue at commit (bot/delivery/listener.py); this poll is the fallback
# for what no notification announces: a notification missed while the listener reconnected, a retry or a
# channel pace scheduled by a replica that died since.
FALLBACK_POLL_SECONDS = 5.0


def backoff(attempts: int) -> dt.timedelta:
    """Exponential backoff after the n-th failed attempt: 2 s, 4 s, 8 s … capped at 5 minutes."""
    return min(dt.timedelta(seconds=2 ** min(attempts + 1, 16)), MAX_BACKOFF)


def _sale_view(msg: q.OutboxMessage) -> SaleView:
    meta = msg.payload.get("sale") or {}
    return SaleView(order_id=str(meta.get("order_id", msg.id)), product=meta.get("product"),
                    amount=msg.amount or 0, currency=msg.currency or "USD",
                    customer_email=meta.get("customer"), affiliate=None, occurred_at=msg.created_at)


def coalesce(sales: Sequence[q.OutboxMessage], *, tz: ZoneInfo) -> dict[str, object]:
    """One summary payload covering every sale in `sales` (totals kept per currency)."""
    totals: dict[str, int] = {}
    for msg in sales:
        if msg.currency and msg.amount is not None:
            totals[msg.currency] = totals.get(msg.currency, 0) + msg.amount
    view = BurstView(count=len(sales), totals=totals, first_at=sales[0].created_at,
                     last_at=sales[-1].created_at, sales=[_sale_view(m) for m in sales])
    return burst_message(view, tz=tz).as_payload()


class DeliveryWorker:
    """Sends queued messages; safe to run in several processes against one outbox."""

    def __init__(self, *, pool: asyncpg.Pool, sender: Sender, tz: ZoneInfo,
                 clock: Callable[[], dt.datetime], poll_interval: float = FALLBACK_POLL_SECONDS,
                 metrics: Metrics | None = None, dsn: str | None = None) -> None:
        self._pool = pool
        self._sender = sender
        self._tz = tz
        self._clock = clock
        self._poll = poll_interval
        self.wake = asyncio.Event()  # set by the listener, and by the worker itself for paced or retried work
        # Without a DSN (the one-shot `salespulse report`, which drains by hand) nothing listens.
        self.listener = OutboxListener(dsn, on_notify=self.wake.set) if dsn else None
        self.metrics = metrics
        self.backoff_scale = 1.0  # fault tests shrink the waits between retries

    async def run(self) -> None:
        """Drain forever: on every notification (a message queued on any replica) and every poll interval."""
        listening = None
        if self.listener is not None:
            listening = asyncio.create_task(self.listener.run(), name="outbox-listener")
        try:
            await self._loop()
        finally:
            if listening is not None:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.drain()
            except DB_UNAVAILABLE as exc:  # not the worker's business to crash over: wait, retry
                log.warning("outbox unreachable, retrying: %s", exc)
            except Exception:  # a background loop must outlive any one bad pass, or nothing is delivered again
                log.exception("delivery pass failed; retrying")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self._poll)

    async def drain(self) -> int:
        """One pass over every channel with due messages; returns how many messages were settled."""
        channels = await q.due_channels(self._pool)
        done = await asyncio.gather(*(self._deliver_channel(c) for c in channels))
        return sum(done)

    async def _deliver_channel(self, channel: str) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await q.claim_channel(conn, channel)
            if claimed is None:  # another worker is posting to this channel right now: look again after it
                self._wake_at(CHANNEL_INTERVAL)
                return 0
            next_post_at, channel_id = claimed
            now = self._clock()
            if next_post_at > now:
                self._wake_at(next_post_at - now)
                return 0
            messages = await q.claim_messages(conn, channel, limit=BATCH)
            if not messages:
                return 0
            batch, payload = self._next_post(messages)
            head = batch[0]
            if head.op != "post" and head.target_ts is None and head.target_status == "pending":
                return 0  # its target is not out yet (held back by a retry): keep the order
            # The locks are held across the HTTP call: no other worker can claim these rows meanwhile.
            result = await self._deliver(conn, channel, channel_id, head, payload)
            await self._settle(conn, channel, batch, payload, result)
            if len(batch) < len(messages) or result.status is Status.RATE_LIMITED:
                self._wake_at(dt.timedelta(seconds=max(result.retry_after, 1.0)))
            return len(batch) if result.status in (Status.OK, Status.PERMANENT) else 0

    def _next_post(self, messages: list[q.OutboxMessage]) -> tuple[list[q.OutboxMessage], dict[str, object]]:
        """The next post: one message; one summary covering every waiting sale; or the newest of
        several waiting updates to the same message (the older ones would be overwritten at once)."""
        head = messages[0]
        sales = [m for m in messages if m.kind == "sale"]
        if head.kind == "sale" and len(sales) > 1:
            return sales, coalesce(sales, tz=self._tz)
        if head.op == "update":
            same = [m for m in messages if m.op == "update" and m.target_id == head.target_id]
            return same, dict(same[-1].payload)
        return [head], dict(head.payload)

    async def _deliver(self, conn: asyncpg.Connection, channel: str, channel_id: str | None,
                       head: q.OutboxMessage, payload: dict[str, object]) -> SendResult:
        """Send, unless an earlier attempt whose answer never came (a crash, a timeout) did reach Slack."""
        if head.op == "update" and head.target_ts and head.target_channel:  # idempotent: no bookkeeping
            return await self._sender.update(channel, channel_id=head.target_channel, ts=head.target_ts,
                                             payload=payload)
        thread_ts = head.target_ts if head.op == "reply" else None
        started = await q.attempt_started(conn, head.id)
        where = head.target_channel if thread_ts else channel_id
        if started is not None and where:
            found = await self._sender.find(channel_id=where, ref=head.id, since=started.timestamp() - 5,
                                            thread_ts=thread_ts)
            if found is not None and found.status is Status.OK:
                log.info("outbox %s was already in Slack (ts %s): not sending it again", head.id, found.ts)
                return found
        # Committed on its own connection before the call: from here on, the message may be in Slack.
        await q.record_attempt(self._pool, outbox_id=head.id, channel=channel)
        # A reply whose parent never reached Slack (failed for good) is said as a message of its own.
        return await self._sender.post(channel, payload, thread_ts=thread_ts, ref=head.id)

    async def _settle(self, conn: asyncpg.Connection, channel: str, batch: list[q.OutboxMessage],
                      payload: dict[str, object], result: SendResult) -> None:
        ids = [m.id for m in batch]
        now = self._clock()
        if self.metrics is not None:
            self.metrics.deliveries.labels(channel=channel, outcome=result.status.value).inc(len(batch))
            if result.error:
                self.metrics.slack_errors.labels(error=result.error[:60]).inc()
        if result.status is not Status.TRANSIENT:  # 5xx and timeouts stay ambiguous: look before resending
            await q.forget_attempt(conn, batch[0].id)
        if result.status is Status.OK:
            if result.channel_id and batch[0].op == "post":
                await q.learn_channel_id(conn, channel, result.channel_id)
            if len(batch) > 1 and batch[0].kind == "sale":
                await q.record_summary(conn, channel=channel, covered=ids, payload=payload,
                                       slack_channel=result.channel_id, slack_ts=result.ts)
            else:
                await q.mark_delivered(conn, ids, slack_channel=result.channel_id, slack_ts=result.ts)
            await q.set_pace(conn, channel, next_post_at=now + CHANNEL_INTERVAL)
            return
        error = result.error or result.status.value
        log.warning("slack delivery to %s: %s (%s)", channel, result.status.value, error)
        await q.record_error(conn, channel=channel, error=error, permanent=result.status is Status.PERMANENT)
        if result.status is Status.RATE_LIMITED:
            await q.set_pace(conn, channel, next_post_at=now + dt.timedelta(seconds=result.retry_after))
        elif result.status is Status.TRANSIENT:
            wait = backoff(batch[0].attempts) * self.backoff_scale
            await q.mark_retry(conn, ids, available_at=now + wait, error=error)
            self._wake_at(wait)  # no notification announces a retry
        else:
            await q.mark_failed(conn, ids, error=error)

    def _wake_at(self, delay: dt.timedelta) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(max(delay.total_seconds(), 0.0), self.wake.set)
