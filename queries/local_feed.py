"""SQL behind the local feed's start (bot/web/feed.py): what the console showed before a restart, read back from the
outbox, which keeps every message it delivered and the address the console gave it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor
from queries.outbox import RENEWAL_SALE, OutboxMessage

# Per channel, the newest $1 posts and thread replies the console delivered — its channel ids are 'local-<channel>'
# (bot/delivery/senders.py ConsoleSender), so what a Slack workspace got from the same database is left out — each
# as its newest delivered edit shows it (an edit settled unsent has no ts: it changed nothing shown), a reply with
# its parent's ts. Only the newest $2 outbox rows are read, off the primary key: the outbox keeps every message ever
# sent, coalesced sales included.
CONSOLE_MESSAGES: Final = f"""
WITH shown AS (
    SELECT o.id, o.channel, o.op, o.target_id, o.slack_ts, o.delivered_at,
           row_number() OVER (PARTITION BY o.channel ORDER BY o.delivered_at DESC, o.id DESC) AS nth
      FROM outbox AS o
     WHERE o.id > (SELECT coalesce(max(id), 0) FROM outbox) - $2
       AND o.op IN ('post', 'reply') AND o.status = 'delivered' AND o.slack_ts IS NOT NULL
       AND o.slack_channel = 'local-' || o.channel
)
SELECT s.channel, s.slack_ts AS ts, p.slack_ts AS thread_ts, s.delivered_at AS shown_at, m.id <> s.id AS edited,
       m.id, m.kind, m.payload, m.amount, m.currency, m.created_at, m.renewal
  FROM shown AS s
  LEFT JOIN outbox AS p ON s.op = 'reply' AND p.id = s.target_id
 CROSS JOIN LATERAL (
       SELECT e.id, e.kind, e.payload, e.amount, e.currency, e.created_at, {RENEWAL_SALE.format(o="e")} AS renewal
         FROM outbox AS e
        WHERE e.id = s.id
           OR (e.target_id = s.id AND e.op = 'update' AND e.status = 'delivered' AND e.slack_ts IS NOT NULL)
        ORDER BY e.id DESC
        LIMIT 1) AS m
 WHERE s.nth <= $1
 ORDER BY s.delivered_at, s.id
"""  # noqa: S608  # splices the constant RENEWAL_SALE, never a value (values are $n)


@dataclass(frozen=True, slots=True)
class ConsoleMessage:
    """A message the console showed, as it stands: where (its logical channel, ts and thread) and what to render."""

    channel: str
    ts: str
    thread_ts: str | None
    shown_at: dt.datetime
    edited: bool
    message: OutboxMessage  # the post, or its newest edit


async def console_messages(db: Executor, *, per_channel: int, within_rows: int) -> list[ConsoleMessage]:
    """The newest `per_channel` messages of each channel the console showed, oldest first."""
    rows = await db.fetch(CONSOLE_MESSAGES, per_channel, within_rows)
    return [ConsoleMessage(channel=r["channel"], ts=r["ts"], thread_ts=r["thread_ts"], shown_at=r["shown_at"],
                           edited=r["edited"],
                           message=OutboxMessage(id=r["id"], kind=r["kind"], payload=r["payload"], amount=r["amount"],
                                                 currency=r["currency"], created_at=r["created_at"], attempts=0,
                                                 renewal=r["renewal"]))
            for r in rows]
