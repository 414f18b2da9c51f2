"""The delivery worker: drains the outbox to Slack, paced per channel, coalescing bursts of sales."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from zoneinfo import ZoneInfo

import asyncpg

from bot.blocks.pings import BURST_LISTED
from bot.db import DB_UNAVAILABLE
from bot.delivery import outcomes
from bot.delivery.lanes import ChannelLanes, FinishingSender
from bot.delivery.listener import NotifyListener
from bot.delivery.posts import BURSTS, Post, burst_post, message_payload
from bot.delivery.senders import Lookup, Seen, Sender, SendResult, Status, retry_or_fail
from bot.delivery.threads import post_reply
from bot.metrics import Metrics
from queries import bursts, pace
from queries import outbox as q

log = logging.getLogger(__name__)

# Slack allows about one message per second per channel:
# https://api.slack.com/apis/rate-limits#posting-messages
CHANNEL_INTERVAL = dt.timedelta(seconds=1)
# A paced channel's next pass starts this long before its slot, does its look-ups, holds the channel and waits
# for the slot itself: the claim and the call then happen right at it, not a wake-up and half a dozen queries
# later (each of which would add to the wait of every sale that arrived just after the previous post).
SLOT_LEAD = dt.timedelta(milliseconds=50)
# The next slot is a second after this one when the call followed the slot within this allowance (its claim and
# rendering take a few milliseconds, which would otherwise stretch every period: 1,004–1,015 ms measured), and a
# second after the call, less the allowance, when the call came late. Calls are then a second apart on average and
# never less than 980 ms: Slack allows short bursts above one per second.
CALL_ALLOWANCE = dt.timedelta(milliseconds=20)
PEEK = 50  # messages looked at per pass: the head, and the updates to the same message just behind it
# Every replica's listener hears each enqueue at commit (bot/delivery/listener.py); this poll is the fallback
# for what no notification announces: a notification missed while the listener reconnected, a retry or a
# channel pace scheduled by a replica that died since.
FALLBACK_POLL_SECONDS = 5.0


class DeliveryWorker:
    """Sends queued messages; safe to run in several processes against one outbox."""

    def __init__(self, *, pool: asyncpg.Pool, sender: Sender, tz: ZoneInfo,
                 clock: Callable[[], dt.datetime], poll_interval: float = FALLBACK_POLL_SECONDS,
                 metrics: Metrics | None = None, dsn: str | None = None) -> None:
        self._pool = pool
        self._sender = FinishingSender(sender)  # at shutdown a call under way finishes and is recorded
        self.tz = tz  # the store's zone, for message text; replaced when it changes from Slack
        self._clock = clock
        self._poll = poll_interval
        self.wake = asyncio.Event()  # set by the listener, and by the worker itself for paced or retried work
        # Channels this worker has a wake-up set for, at their next slot less SLOT_LEAD: a message queued for one
        # of them meanwhile can only go out then, and that pass finds it.
        self._slots: dict[str, dt.datetime] = {}
        self.passes = 0  # passes over the outbox started
        # Without a DSN (the one-shot `salespulse report`, which drains by hand) nothing listens.
        self.listener = NotifyListener(dsn, on_notify=self.wake.set,
                                       subscribe=lambda conn: q.listen(conn, self.queued)) if dsn else None
        self.metrics = metrics
        self.backoff_scale = 1.0  # fault tests shrink the waits between retries
        self._lanes = ChannelLanes(pool, deliver=self._deliver_channel, wake=self._wake_at,  # run()'s passes
                                   sender=self._sender)
        self._app_limit = outcomes.AppLimit()  # Slack's `rate_limited` answers in a row: every channel waits

    async def run(self) -> None:
        """Drain forever: on every notification (a message queued on any replica) and every poll interval."""
        listening = None
        if self.listener is not None:
            listening = asyncio.create_task(self.listener.run(), name="outbox-listener")
        try:
            await self._loop()
        finally:
            await self._lanes.close()
            if listening is not None:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            # Cleared before the pass, not after: a wake-up that fires during it (a slot coming due, a sale
            # queued) starts the next pass at once instead of being lost until the fallback poll.
            self.wake.clear()
            try:  # each due channel's pass in a task of its own, not awaited: a slow one holds only its channel
                self.passes += 1
                await self._lanes.dispatch()
            except DB_UNAVAILABLE as exc:  # not the worker's business to crash over: wait, retry
                log.warning("outbox unreachable, retrying: %s", exc)
            except Exception:  # a background loop must outlive any one bad pass, or nothing is delivered again
                log.exception("delivery pass failed; retrying")
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as the event
            # fires (python/cpython#86296), and then shutdown waits forever for this loop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self.wake.wait()

    def queued(self, channel: str | None) -> None:
        """Messages were queued for `channel` (None: for any channel), on some replica: look, unless this worker
        already waits for that channel's next slot. During a burst that is most notifications, each of which
        would cost a pass of half a dozen statements only to find the channel paced."""
        slot = self._slots.get(channel) if channel else None
        if slot is None or slot - SLOT_LEAD <= self._clock():
            self.wake.set()

    async def drain(self) -> int:
        """One pass over every channel with due messages, awaited (tests, the one-shot report; `run()` passes each
        channel on its own); returns how many messages were settled."""
        self.passes += 1
        channels = await q.due_channels(self._pool)
        done = await asyncio.gather(*(self._deliver_channel(c) for c in channels))
        # A message queued to go out later (a sale ping settling, a retry) notifies nobody when its time comes.
        if (wait := await q.next_due_in(self._pool)) is not None:
            self._wake_at(dt.timedelta(seconds=wait))
        return sum(done)

    async def _deliver_channel(self, channel: str) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await pace.claim_channel(conn, channel)
            if claimed is None:  # another worker is posting to this channel right now: look again after it
                self._wake_at(CHANNEL_INTERVAL)
                return 0
            slot, learnt = claimed  # the Slack id the last post went to: where to look for an attempt that has none
            now = self._clock()
            if slot - now > SLOT_LEAD:
                self._wake_for(channel, slot)
                return 0
            # The pace-row lock is held across the HTTP call: nobody else posts to this channel meanwhile.
            doubt = await bursts.in_doubt(conn, channel)
            if doubt is not None and doubt.wait_seconds > 0:  # backing off: nothing overtakes it
                self._wake_at(dt.timedelta(seconds=doubt.wait_seconds))
                return 0
            if doubt:
                await self._until(slot)
            # The pace counts from the call, not from its answer: Slack spaces messages by when they arrive.
            calling = self._clock()
            sent = await self._resolve_burst(conn, channel, learnt, doubt) if doubt else None
            if sent is None:
                post = await self._next_post(conn, channel, slot)
                if post is None:
                    return 0
                calling = self._clock()
                if (sent := await self._deliver(conn, channel, learnt, post)) is None:
                    self._wake_at(dt.timedelta(0))  # nothing sent, the slot unused: look again at once
                    return 0
            post, result = sent
            if isinstance(result, Lookup):  # Slack could not tell whether an earlier attempt landed: nothing sent
                self._wake_at(await outcomes.put_off(conn, channel, post, result, now=self._clock(),
                                                     scale=self.backoff_scale))
                return 0
            settled = await self._settle(conn, channel, post, result, paced_from=max(slot, calling - CALL_ALLOWANCE))
            return post.count if settled else 0

    async def _resolve_burst(self, conn: asyncpg.Connection, channel: str, learnt: str | None,
                             doubt: bursts.InDoubt) -> tuple[Post, SendResult | Lookup] | None:
        """A burst whose outcome is unknown holds its channel until it is settled (so an outage ends with one
        message, not one per retry): found in Slack → settled; not found → forgotten, its sales claimed again
        with everything that arrived since (None: the queue goes on as usual); Slack cannot tell now → looked for
        again later (the Lookup), nothing sent; can never tell, or Slack refused it (nothing landed) → sent again."""
        seen = None if doubt.refused else await self._look_up(
            where=doubt.slack_channel_id or self._sender.channel_id(channel) or learnt, ref=doubt.ref,
            started=doubt.started_at)
        if seen is not None and seen.seen is Seen.NOT_FOUND:
            await q.forget_attempt(self._pool, doubt.ref)  # committed: the claim that follows must see it gone
            return None
        summary = await bursts.view(conn, doubt.ref, listed=BURST_LISTED)
        if summary is None:  # nothing left to cover (cannot happen while settling is atomic): drop the record
            await q.forget_attempt(self._pool, doubt.ref)
            return None
        target = self._sender.channel_id(channel)
        post = burst_post(summary, tz=self.tz, failures=doubt.failures, slack_channel=target, resent=True)
        if seen is not None and seen.seen is Seen.FOUND:
            log.info("burst %s was already in Slack (ts %s): not sending it again", doubt.ref, seen.ts)
            return post, SendResult(Status.OK, channel_id=seen.channel_id, ts=seen.ts)
        if seen is not None and seen.seen is Seen.LATER:
            return post, seen
        await bursts.resending(self._pool, doubt.ref, slack_channel=target)  # committed: it may land from here on
        return post, await self._sender.post(channel, post.payload, ref=post.ref, channel_id=target)

    async def _look_up(self, *, where: str | None, ref: int, started: dt.datetime,
                       thread_ts: str | None = None) -> Lookup:
        """Look for an earlier attempt in the Slack channel `where` it was sent to (None: not known)."""
        if where is None:
            return Lookup(Seen.NEVER, error="the channel's Slack id is not known")
        return await self._sender.find(channel_id=where, ref=ref, since=started.timestamp() - 5, thread_ts=thread_ts)

    async def _until(self, slot: dt.datetime) -> None:
        """Wait for the channel's slot (at most SLOT_LEAD and a little: the pass started just before it)."""
        if (wait := (slot - self._clock()).total_seconds()) > 0:
            await asyncio.sleep(wait)

    async def _next_post(self, conn: asyncpg.Connection, channel: str, slot: dt.datetime) -> Post | None:
        """The next post, once the channel's slot has come: one message; one summary covering every waiting
        sale; or the newest of several waiting updates to the same message (the older ones would be
        overwritten at once)."""
        # An edit or reply whose target is not out yet (held back by a retry) waits behind it, and a reply behind an
        # earlier reply to the same message (put back by a retry: the thread keeps its order); the rest go on.
        messages = [m for m in await q.next_messages(conn, channel, limit=PEEK)
                    if (m.op == "post" or m.target_ts is not None or m.target_status != "pending")
                    and not (m.op == "reply" and m.earlier)]
        if not messages:
            return None
        head = messages[0]
        if head.op == "update" and (not self._sender.supports_updates or head.target_status == "coalesced"
                                    or (head.target_status == "delivered" and head.target_ts is None)):
            # Nothing to edit (an incoming webhook cannot; a ping summarised in a burst, or posted by an incoming
            # webhook before the bot token came, has no message of its own to edit):
            # settled unsent, without using the channel's slot, and the channel is looked at again at once.
            # An edit of a message that failed for good is not here on purpose: nothing of it reached Slack, so
            # its newest version is posted as a message of its own (the alert, the ping is still told once).
            await q.mark_delivered(conn, (head.id,), slack_channel=None, slack_ts=None)
            self._wake_at(dt.timedelta(0))
            return None
        await self._until(slot)  # sales arriving until the slot still make this post
        if (head.kind in BURSTS and head.op == "post" and await q.attempt(conn, head.id) is None
                and await bursts.waiting(conn, channel, head.kind) > 1):
            # Claimed and recorded on a connection of its own, committed before the call to Slack.
            target = self._sender.channel_id(channel)
            summary = await bursts.claim(self._pool, channel, kind=head.kind, listed=BURST_LISTED,
                                         slack_channel=target)
            if summary is not None:
                return burst_post(summary, tz=self.tz, slack_channel=target)
        if head.op == "update":
            # The newest edit shows the message's whole state: it settles every older one still pending, those put
            # back by a retry included, which would otherwise land later and show an older state over it.
            newest = [m for m in messages if m.op == "update" and m.target_id == head.target_id][-1]
            ids = (*newest.earlier, newest.id)
            return Post(ref=head.id, payload=message_payload(newest, tz=self.tz), head=head, ids=ids, count=len(ids))
        return Post(ref=head.id, payload=message_payload(head, tz=self.tz), head=head, ids=(head.id,))

    async def _deliver(self, conn: asyncpg.Connection, channel: str, learnt: str | None,
                       post: Post) -> tuple[Post, SendResult | Lookup] | None:
        """Send, unless an earlier attempt whose answer never came (a crash, a timeout) did reach Slack, Slack cannot
        tell now whether it did (the Lookup: nothing sent), or the message is gone (None)."""
        head = post.head
        if head is None:  # a burst: its attempt was recorded with its claim
            return post, await self._sender.post(channel, post.payload, ref=post.ref, channel_id=post.slack_channel)
        if head.op == "update" and head.target_ts and head.target_channel:  # idempotent: no bookkeeping
            return post, await self._sender.update(channel, channel_id=head.target_channel, ts=head.target_ts,
                                                   payload=post.payload)
        thread_ts = head.target_ts if head.op == "reply" else None
        # A reply goes to its parent's channel, which is not the configured one any more once the channel changed in
        # Settings; a post to the configured channel, by the id the sender resolved (None: by its name).
        target = head.target_channel if thread_ts else self._sender.channel_id(channel)
        if (earlier := await q.attempt(conn, head.id)) is not None:
            post = dataclasses.replace(post, resent=True)
            seen = await self._look_up(where=earlier.slack_channel_id or target or (None if thread_ts else learnt),
                                       ref=head.id, started=earlier.started_at, thread_ts=thread_ts)
            if seen.seen is Seen.FOUND:
                log.info("outbox %s was already in Slack (ts %s): not sending it again", head.id, seen.ts)
                return post, SendResult(Status.OK, channel_id=seen.channel_id, ts=seen.ts, found=True)
            if seen.seen is Seen.LATER:
                return post, seen
        # Committed on its own connection before the call: from here on, the message may be in Slack, there.
        if not await q.record_attempt(self._pool, outbox_id=head.id, channel=channel, slack_channel=target):
            return None  # deleted since it was read (merged into another order's ping): not sent
        # A post, or a reply whose parent never reached Slack (failed for good): a message of its own.
        result = await (post_reply(self._pool, self._sender, channel, post.payload, ref=head.id, thread_ts=thread_ts,
                                   parent_channel=target, learnt=learnt) if thread_ts
                        else self._sender.post(channel, post.payload, ref=head.id, channel_id=target))
        return None if result is None else (post, result)

    async def _settle(self, conn: asyncpg.Connection, channel: str, post: Post, result: SendResult, *,
                      paced_from: dt.datetime) -> bool:
        """Record the call's outcome; whether the messages are settled (delivered, or failed for good)."""
        if self.metrics is not None:
            self.metrics.deliveries.labels(channel=channel, outcome=result.status.value).inc(post.count)
            if result.error:
                self.metrics.slack_errors.labels(error=result.error[:60]).inc()
        if result.status is Status.OK:
            await outcomes.delivered(conn, channel, post, result)
            await pace.set_pace(conn, channel, next_post_at=paced_from + CHANNEL_INTERVAL)
            self._app_limit.streak = 0  # Slack takes posts again: a later `rate_limited` pauses 1 s
            self._wake_for(channel, paced_from + CHANNEL_INTERVAL)  # what arrived meanwhile goes out next
            return True
        status = retry_or_fail(result.status, tries=1 + post.failed_before)
        log.warning("slack delivery to %s: %s (%s)", channel, result.status.value, result.error or result.status.value)
        wait = await outcomes.failed(conn, channel, post, result, status=status, now=self._clock(),
                                     scale=self.backoff_scale, app_limit=self._app_limit)
        if wait is not None:
            self._wake_at(wait)  # no notification announces a retry
        return status is Status.PERMANENT

    def _wake_for(self, channel: str, slot: dt.datetime) -> None:
        """Pass again just before the channel's next slot, and until then let its notifications be."""
        self._slots[channel] = slot
        self._wake_at(slot - SLOT_LEAD - self._clock())

    def _wake_at(self, delay: dt.timedelta) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(max(delay.total_seconds(), 0.0), self.wake.set)
