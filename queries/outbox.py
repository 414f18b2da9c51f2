"""SQL for the outbox: enqueue in the intake's transaction, claim and settle in the delivery worker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from queries.executor import Executor

# What bot/migrations/0008_outbox_notify.sql and 0025 notify after an insert into the outbox: its channels.
NOTIFY_CHANNEL: Final = "salespulse_outbox"

# Outbox row `o` is untried: pending, never tried, no attempt recorded. Held: untried and not due yet. Nothing of a
# held row can be in Slack and no worker can be reading it, so its text may still change. Any other row may be in
# Slack, or be on its way with what a worker read: the worker locks no outbox row while it sends, and a timed-out
# attempt may have landed.
UNTRIED: Final = """(o.status = 'pending' AND o.attempts = 0
                     AND NOT EXISTS (SELECT FROM delivery_attempts AS a WHERE a.outbox_id = o.id))"""
HELD: Final = f"({UNTRIED} AND o.available_at > now())"
# What a sale ping's payload `{p}` shows, to tell whether an edit would change it: its fields, not its time or
# lateness (queries/intake_pings.py REFRESH_PINGS, SETTLE_SAME_EDITS below).
SALE_SHOWN: Final = "(({p} -> 'sale') - 'late' - 'occurred_at')"
# Whether outbox row `{o}` is the sale ping (or its edit) of an order that paid a renewal invoice — remembered by the
# intake unless SUBSCRIPTION_RENEWALS=ping (queries/subscriptions.py) — so it is told as a renewal, not a new sale.
# Read when the message is rendered: whichever of the payment's events told the renewal, the held ping says so.
RENEWAL_SALE: Final = """({o}.kind = 'sale' AND EXISTS (
    SELECT FROM orders AS d JOIN renewal_invoices AS r ON r.invoice_id = d.invoice_id
     WHERE d.id = {o}.payload -> 'sale' ->> 'order_id'))"""

ENQUEUE: Final = """
INSERT INTO outbox (dedupe_key, channel, kind, payload, amount, currency, op, target_id)
VALUES             ($1,         $2,      $3,   $4,      $5,     $6,       $7, $8)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""

DUE_CHANNELS: Final = """
SELECT DISTINCT channel FROM outbox WHERE status = 'pending' AND available_at <= now()
"""

# How long until the next message that is waiting on purpose (a settling sale ping, a retry) becomes due.
NEXT_DUE_IN: Final = """
SELECT extract(epoch FROM min(available_at) - now())::float8
  FROM outbox
 WHERE status = 'pending' AND available_at > now()
"""

# Recorded only while the message is still there to send: the intake may have deleted it since the worker read it
# (a ping merged into another order's, a renewal left to the report). The key-share lock waits for a transaction
# deleting it or changing its key (a merge); one refreshing its text (FOR NO KEY UPDATE) does not conflict.
# $3: the Slack channel the post goes to (NULL: not known before the call), where a look-up will search. An earlier
# attempt's record keeps its start (the look-up's window) and takes the new channel: the message was looked for where
# it went before and is sent again now, maybe elsewhere (the channel moved in Settings since).
RECORD_ATTEMPT: Final = """
WITH message AS (SELECT id FROM outbox WHERE id = $1 AND status = 'pending' FOR KEY SHARE),
     recorded AS (INSERT INTO delivery_attempts (outbox_id, channel, slack_channel_id) SELECT id, $2, $3 FROM message
                   ON CONFLICT (outbox_id) DO UPDATE SET slack_channel_id = excluded.slack_channel_id)
SELECT EXISTS (SELECT FROM message)
"""

ATTEMPT: Final = "SELECT started_at, slack_channel_id FROM delivery_attempts WHERE outbox_id = $1"

FORGET_ATTEMPT: Final = "DELETE FROM delivery_attempts WHERE outbox_id = $1"

# The oldest due messages of a channel, its alerts first (a flood of failed-payment pings must not hold back the
# alert about them; an alert's updates and replies are alerts too, so their order is kept). Each half reads its own
# index, at most $2 rows. No row locks: the channel's pace-row lock, held by the caller, makes it the channel's
# only poster (and a burst claim on another connection must be able to lock these rows). An update or thread reply
# carries the Slack address of the message it targets (once that one is out), and the edits (replies) of that message
# queued before it and still pending, due or not (put back by a retry): an edit supersedes them, a reply waits. An
# edit's attempts are the most any pending edit of its message has spent: the newest state takes over their retries,
# so edits that keep failing are given up (senders.UNEXPECTED_TRIES) and back off even as newer ones keep coming.
_DUE_IN_CHANNEL: Final = "o.channel = $1 AND o.status = 'pending' AND o.available_at <= now()"
NEXT_MESSAGES: Final = f"""
SELECT o.id, o.kind, o.payload, o.amount, o.currency, o.created_at, o.op, o.target_id,
       CASE WHEN o.op = 'update'
            THEN (SELECT max(e.attempts) FROM outbox AS e
                   WHERE e.target_id = o.target_id AND e.op = 'update' AND e.status = 'pending')
            ELSE o.attempts END AS attempts,
       t.slack_channel AS target_channel, t.slack_ts AS target_ts, t.status AS target_status,
       {RENEWAL_SALE.format(o="o")} AS renewal,
       ARRAY(SELECT e.id FROM outbox AS e WHERE o.op <> 'post' AND e.target_id = o.target_id AND e.op = o.op
                AND e.status = 'pending' AND e.id < o.id ORDER BY e.id) AS earlier
  FROM ((SELECT o.id, 0 AS band FROM outbox AS o WHERE {_DUE_IN_CHANNEL} AND o.kind = 'alert' ORDER BY o.id LIMIT $2)
        UNION ALL
        (SELECT o.id, 1 FROM outbox AS o WHERE {_DUE_IN_CHANNEL} AND o.kind <> 'alert' ORDER BY o.id LIMIT $2))
       AS n
  JOIN outbox AS o ON o.id = n.id
  LEFT JOIN outbox AS t ON t.id = o.target_id
 ORDER BY n.band, o.id
 LIMIT $2
"""

MARK_DELIVERED: Final = """
UPDATE outbox
   SET status = 'delivered', delivered_at = now(), attempts = attempts + 1,
       slack_channel = $2, slack_ts = $3, last_error = NULL
 WHERE id = ANY($1::bigint[])
"""

# Edits queued for a sale ping while a worker was posting it (the intake could not know what the worker had read):
# when the newest shows what the post showed, they are all settled without a call to Slack, so they do not spend the
# channel's slot; otherwise they go (the worker sends only the newest). $2–$4: the sale's fields, amount and
# currency as posted; time and lateness are not worth an edit (intake_pings.REFRESH_PINGS).
SETTLE_SAME_EDITS: Final = f"""
WITH newest AS (
    SELECT {SALE_SHOWN.format(p="payload")} AS shows, amount, currency
      FROM outbox
     WHERE target_id = $1 AND op = 'update' AND status = 'pending'
     ORDER BY id DESC
     LIMIT 1
)
UPDATE outbox
   SET status = 'delivered', delivered_at = now()
 WHERE target_id = $1 AND op = 'update' AND status = 'pending'
   AND EXISTS (SELECT FROM newest
                WHERE (shows, amount, currency)
                      IS NOT DISTINCT FROM ({SALE_SHOWN.format(p="$2::jsonb")}, $3::bigint, $4::text))
"""

MARK_RETRY: Final = """
UPDATE outbox
   SET attempts = attempts + 1, available_at = $2, last_error = $3, first_due_at = coalesce(first_due_at, available_at)
 WHERE id = ANY($1::bigint[])
"""

# Not a failed attempt: a look-up Slack could not answer put the message off (it is not counted towards giving up).
POSTPONE: Final = """
UPDATE outbox
   SET available_at = $2, last_error = $3, first_due_at = coalesce(first_due_at, available_at)
 WHERE id = ANY($1::bigint[])
"""

MARK_FAILED: Final = """
UPDATE outbox
   SET status = 'failed', attempts = attempts + 1, delivered_at = now(), last_error = $2
 WHERE id = ANY($1::bigint[])
"""

# The same error as the channel's last, within the hour its row began, is a repeat of it; otherwise a new row. Rows
# past 90 days go, a hundred at a time, as new errors come.
RECORD_ERROR: Final = """
WITH last AS (
SELECT id FROM delivery_errors
 WHERE channel = $1 AND id = (SELECT max(id) FROM delivery_errors WHERE channel = $1)
   AND error = $2 AND permanent = $3 AND created_at > now() - interval '1 hour'
   FOR UPDATE
), repeated AS (
UPDATE delivery_errors AS d SET repeats = d.repeats + 1, last_at = now()
  FROM last WHERE d.id = last.id
RETURNING d.id
), gone AS (
DELETE FROM delivery_errors
 WHERE id IN (SELECT id FROM delivery_errors WHERE created_at < now() - interval '90 days' LIMIT 100)
)
INSERT INTO delivery_errors (channel, error, permanent)
SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT FROM repeated)
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    """An earlier attempt to send a message whose answer never came: when it began, and where it was sent."""

    started_at: dt.datetime
    slack_channel_id: str | None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message waiting for delivery."""

    id: int
    kind: str
    payload: dict[str, Any]
    amount: int | None
    currency: str | None
    created_at: dt.datetime
    attempts: int
    op: str = "post"  # post | update | reply
    target_id: int | None = None
    target_channel: str | None = None
    target_ts: str | None = None
    target_status: str | None = None
    renewal: bool = False  # a sale ping of a subscription's renewal (RENEWAL_SALE)
    earlier: Sequence[int] = ()  # an edit's (a reply's) pending elders: the same op on the same target, queued first


async def enqueue(db: Executor, *, dedupe_key: str, channel: str, kind: str, payload: dict[str, Any],
                  amount: int | None = None, currency: str | None = None, op: str = "post",
                  target_id: int | None = None) -> int | None:
    """Queue a message once per dedupe key; None when that key was already queued. `op` "update" replaces message
    `target_id` in place; "reply" answers in its thread."""
    msg_id: int | None = await db.fetchval(ENQUEUE, dedupe_key, channel, kind, payload, amount, currency, op,
                                           target_id)
    return msg_id


async def due_channels(db: Executor) -> list[str]:
    """Logical channels with at least one message ready to send."""
    return [r["channel"] for r in await db.fetch(DUE_CHANNELS)]


async def next_due_in(db: Executor) -> float | None:
    """Seconds until the next pending message becomes due, or None when none is waiting for its time."""
    seconds: float | None = await db.fetchval(NEXT_DUE_IN)
    return seconds


async def record_attempt(db: Executor, *, outbox_id: int, channel: str, slack_channel: str | None = None) -> bool:
    """Before calling Slack (committed on its own): this message may reach Slack from now on, in `slack_channel`
    (None: not known). False: it is gone (deleted by the intake since it was read), and must not be sent."""
    there: bool = await db.fetchval(RECORD_ATTEMPT, outbox_id, channel, slack_channel)
    return there


async def attempt(db: Executor, outbox_id: int) -> Attempt | None:
    """An earlier, unconfirmed attempt to send this message."""
    row = await db.fetchrow(ATTEMPT, outbox_id)
    return Attempt(**dict(row)) if row else None


async def forget_attempt(db: Executor, outbox_id: int) -> None:
    """The attempt's outcome is known."""
    await db.execute(FORGET_ATTEMPT, outbox_id)


async def next_messages(db: Executor, channel: str, *, limit: int) -> list[OutboxMessage]:
    """The oldest due messages of a channel (call it holding the channel: see `claim_channel`)."""
    rows = await db.fetch(NEXT_MESSAGES, channel, limit)
    return [OutboxMessage(**dict(r)) for r in rows]


async def mark_delivered(db: Executor, ids: Sequence[int], *, slack_channel: str | None,
                         slack_ts: str | None, posted: OutboxMessage | None = None) -> None:
    """Settle messages Slack accepted; `posted`, the sale ping as the worker read and posted it, also settles the
    edits queued for it meanwhile that would show the same."""
    await db.execute(MARK_DELIVERED, list(ids), slack_channel, slack_ts)
    if posted is not None and posted.kind == "sale" and posted.op == "post" and "sale" in posted.payload:
        await db.execute(SETTLE_SAME_EDITS, posted.id, posted.payload, posted.amount, posted.currency)


async def mark_retry(db: Executor, ids: Sequence[int], *, available_at: dt.datetime, error: str) -> None:
    """Put messages back for a later attempt."""
    await db.execute(MARK_RETRY, list(ids), available_at, error[:1000])


async def postpone(db: Executor, ids: Sequence[int], *, available_at: dt.datetime, error: str) -> None:
    """Put messages off without counting an attempt (a look-up Slack could not answer)."""
    await db.execute(POSTPONE, list(ids), available_at, error[:1000])


async def mark_failed(db: Executor, ids: Sequence[int], *, error: str) -> None:
    """Give up on messages Slack refused for good (the error stays visible in /health)."""
    await db.execute(MARK_FAILED, list(ids), error[:1000])


async def record_error(db: Executor, *, channel: str, error: str, permanent: bool) -> None:
    """Log a delivery problem for /health."""
    await db.execute(RECORD_ERROR, channel, error[:1000], permanent)


async def listen(conn: asyncpg.Connection, on_queued: Callable[[str | None], None]) -> None:
    """LISTEN for new outbox messages on `conn` (a connection of its own: LISTEN is per session, and a pooled
    connection would hand it to whoever acquires it next); `on_queued` gets the channel each notification names
    (migration 0025), or None for one that names none."""
    await conn.add_listener(NOTIFY_CHANNEL, lambda _conn, _pid, _name, channel: on_queued(channel or None))
