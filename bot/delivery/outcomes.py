"""What a delivery pass writes down for its outcome: delivered (or found in Slack), retried, rate limited, failed for
good, or put off because Slack could not tell whether an earlier attempt had landed."""

from __future__ import annotations

import datetime as dt

import asyncpg

from bot.delivery.posts import Post
from bot.delivery.senders import HOLD_RETRY, REFUSED, Lookup, SendResult, Status, backoff
from bot.delivery.webapi import APP_RATE_LIMITED
from queries import bursts, pace
from queries import outbox as q

MIN_WAIT = dt.timedelta(milliseconds=50)
# Slack's `rate_limited` (the app's posting limit across the workspace) pauses every channel: 1 s, twice as long each
# time it comes again, at most 30 s, until a post goes through.
APP_LIMIT_FIRST = dt.timedelta(seconds=1)
APP_LIMIT_MAX = dt.timedelta(seconds=30)


class AppLimit:
    """How many `rate_limited` answers this process had in a row: the next workspace-wide pause grows with them."""

    def __init__(self) -> None:
        self.streak = 0

    def pause(self) -> dt.timedelta:
        """The pause for one more `rate_limited` in a row."""
        self.streak += 1
        return min(APP_LIMIT_FIRST * 2 ** min(self.streak - 1, 10), APP_LIMIT_MAX)


async def delivered(conn: asyncpg.Connection, channel: str, post: Post, result: SendResult) -> None:
    """Slack has the message (or the burst): settle what it covers."""
    if result.channel_id and (post.head is None or post.head.op == "post"):
        await pace.learn_channel_id(conn, channel, result.channel_id)
    if post.burst:
        await bursts.settle(conn, ref=post.ref, channel=channel, payload=post.payload,
                            slack_channel=result.channel_id, slack_ts=result.ts)
    else:
        await q.forget_attempt(conn, post.ref)
        await q.mark_delivered(conn, post.ids, slack_channel=result.channel_id, slack_ts=result.ts,
                               posted=None if result.found else post.head)


async def failed(conn: asyncpg.Connection, channel: str, post: Post, result: SendResult, *, status: Status,
                 now: dt.datetime, scale: float, app_limit: AppLimit) -> dt.timedelta | None:
    """A call Slack did not take, to be settled as `status` (retry_or_fail's): when to look again (None: failed for
    good)."""
    error = result.error or result.status.value
    await q.record_error(conn, channel=channel, error=error, permanent=status is Status.PERMANENT)
    if status is Status.RATE_LIMITED:  # not posted
        if not post.resent:  # a burst claimed for this call is claimed afresh, with what came since
            await q.forget_attempt(conn, post.ref)
        elif post.burst:  # an earlier attempt's record is never forgotten over a 429: nothing of it landed now
            await bursts.mark_retry(conn, post.ref, retry_at=now, refused=True, failed=False)
        wait = dt.timedelta(seconds=result.retry_after)
        if result.error == APP_RATE_LIMITED:  # every channel of the workspace waits, longer while it repeats
            wait = app_limit.pause()
            await pace.pause_workspace(conn, until=now + wait)
        await pace.set_pace(conn, channel, next_post_at=now + wait)
        return max(wait, MIN_WAIT)
    if status in (Status.TRANSIENT, Status.HELD):  # 5xx and timeouts stay ambiguous: look before resending
        wait = (HOLD_RETRY if status is Status.HELD else backoff(post.failed_before)) * scale
        if post.burst:  # Slack's refusal (an error it named) says nothing landed: no look-up before the next try
            await bursts.mark_retry(conn, post.ref, retry_at=now + wait, refused=result.status in REFUSED)
        else:
            await q.mark_retry(conn, post.ids, available_at=now + wait, error=error)
        return wait
    if post.burst:
        await bursts.mark_failed(conn, post.ref, error=error)
    else:
        await q.forget_attempt(conn, post.ref)
        await q.mark_failed(conn, post.ids, error=error)
    return None


async def put_off(conn: asyncpg.Connection, channel: str, post: Post, seen: Lookup, *, now: dt.datetime,
                  scale: float) -> dt.timedelta:
    """Slack could not tell whether an earlier attempt landed (a 5xx, timeout or 429 answering the look-up): nothing
    is sent, the attempt stays in doubt and is looked up again after Slack's Retry-After (the channel's pace: nothing
    else goes to it meanwhile) or a backoff. Not counted as a failed call. When to look again."""
    error = f"look-up: {seen.error}"
    await q.record_error(conn, channel=channel, error=error, permanent=False)
    if seen.error == "ratelimited":
        wait = dt.timedelta(seconds=seen.retry_after)
        await pace.set_pace(conn, channel, next_post_at=now + wait)
    else:
        wait = backoff(post.failed_before) * scale
    if post.burst:
        await bursts.mark_retry(conn, post.ref, retry_at=now + wait, refused=False, failed=False)
    else:
        await q.postpone(conn, post.ids, available_at=now + wait, error=error)
    return max(wait, MIN_WAIT)
