"""Posting a thread reply, and saying it as a message of its own when its thread is gone or closed to replies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

from bot.delivery.senders import Sender, SendResult
from queries import outbox as q

log = logging.getLogger(__name__)

# A reply whose thread is gone (its parent deleted) or closed to replies is said as a message of its own, as one
# whose parent failed.
THREAD_GONE = frozenset({"thread_not_found", "cannot_reply_to_message", "restricted_action_non_threadable_channel",
                         "restricted_action_thread_locked"})


async def post_reply(pool: asyncpg.Pool, sender: Sender, channel: str, payload: Mapping[str, Any], *, ref: int,
                     thread_ts: str, parent_channel: str | None, learnt: str | None) -> SendResult | None:
    """Reply in the thread of `thread_ts` (in `parent_channel`; its attempt recorded there by the caller); when the
    thread is gone, post to the configured channel instead. None: the message is gone (not sent)."""
    result = await sender.post(channel, payload, thread_ts=thread_ts, ref=ref, channel_id=parent_channel)
    if result.error not in THREAD_GONE:
        return result
    log.info("outbox %s: its thread is gone (%s), posted as a message of its own", ref, result.error)
    # Committed before the call: from here on it may be in the configured channel, outside any thread. A look-up
    # after an unreadable answer searches there (Sender.find: a thread that is gone, or does not have it, sends it
    # to the channel itself), and does not post it twice.
    alone = sender.channel_id(channel)
    if not await q.record_attempt(pool, outbox_id=ref, channel=channel, slack_channel=alone or learnt):
        return None
    return await sender.post(channel, payload, ref=ref, channel_id=alone)
