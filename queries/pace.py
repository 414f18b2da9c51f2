"""SQL for the delivery pace: each channel's pace row (its lock makes one poster per channel across replicas) and the
workspace-wide pause Slack's `rate_limited` asks for."""

from __future__ import annotations

import datetime as dt
from typing import Final

from queries.executor import Executor

# The pace row no logical channel has: when posting to any channel of the workspace may resume (Slack's `rate_limited`
# answer, "Application has posted too many messages", is the app's posting limit across the workspace, not one
# channel's). Never due in the outbox, so never claimed; read by every claim. Spelt out in the SQL below.
WORKSPACE: Final = "*"

ENSURE_PACE_ROW: Final = """
INSERT INTO channel_pace (channel) VALUES ($1) ON CONFLICT (channel) DO NOTHING
"""

# Whoever holds this row lock is the only poster to the channel, across all replicas. Its next post waits for the
# workspace's pause too (the WORKSPACE row: read, not locked).
CLAIM_CHANNEL: Final = """
SELECT greatest(p.next_post_at,
                (SELECT w.next_post_at FROM channel_pace AS w WHERE w.channel = '*')) AS next_post_at,
       p.slack_channel_id
  FROM channel_pace AS p
 WHERE p.channel = $1
   FOR UPDATE SKIP LOCKED
"""

LEARN_CHANNEL_ID: Final = """
UPDATE channel_pace SET slack_channel_id = $2 WHERE channel = $1 AND slack_channel_id IS DISTINCT FROM $2
"""

SET_PACE: Final = """
UPDATE channel_pace SET next_post_at = $2 WHERE channel = $1
"""

# A later pause wins over an earlier one (several channels may be answered `rate_limited` at once).
PAUSE_WORKSPACE: Final = """
INSERT INTO channel_pace (channel, next_post_at) VALUES ('*', $1)
ON CONFLICT (channel) DO UPDATE SET next_post_at = greatest(channel_pace.next_post_at, excluded.next_post_at)
"""


async def claim_channel(db: Executor, channel: str) -> tuple[dt.datetime, str | None] | None:
    """Lock the channel's pace row (inside a transaction): (next post time, the workspace's pause included; Slack
    channel id), or None when another worker holds it."""
    await db.execute(ENSURE_PACE_ROW, channel)
    row = await db.fetchrow(CLAIM_CHANNEL, channel)
    return (row["next_post_at"], row["slack_channel_id"]) if row else None


async def learn_channel_id(db: Executor, channel: str, channel_id: str) -> None:
    """Remember the Slack id of a logical channel."""
    await db.execute(LEARN_CHANNEL_ID, channel, channel_id)


async def set_pace(db: Executor, channel: str, *, next_post_at: dt.datetime) -> None:
    """When the channel may be posted to next."""
    await db.execute(SET_PACE, channel, next_post_at)


async def pause_workspace(db: Executor, *, until: dt.datetime) -> None:
    """No channel of the workspace is posted to before `until` (or a later pause already set)."""
    await db.execute(PAUSE_WORKSPACE, until)
