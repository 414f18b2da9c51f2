"""SQL for coalesced messages: claim every waiting sale (or failed-payment, refund or dispute ping) of a channel in
one statement, summarise it in PostgreSQL (count, totals per currency, the first few), and settle the set by its
attempt record. A burst is of one kind (its first message's): sales, or pings said in their own text — failures (a
card-testing attack queues hundreds), refunds (a bulk refund), disputes (a fraud wave)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from queries.executor import Executor
from queries.outbox import RENEWAL_SALE

# A post of channel $1 a burst may take: of the kind the parameter `{kind}` names, due, and with no attempt of its
# own (a single ping that may be in Slack is looked up first). Edits (a late decline reason, a sale named late)
# are not posts: they never join a burst.
_BURSTABLE: Final = """o.channel = $1 AND o.kind = {kind} AND o.op = 'post' AND o.status = 'pending'
       AND o.available_at <= now() AND NOT EXISTS (SELECT FROM delivery_attempts AS a WHERE a.outbox_id = o.id)"""

# How many posts of kind $2 wait for one channel, ready to go out now, capped at 2: "is there a burst?" without
# counting it.
WAITING: Final = f"""
SELECT count(*)
  FROM (SELECT 1 FROM outbox AS o WHERE {_BURSTABLE.format(kind="$2")} LIMIT 2) AS s
"""

# A ping's title: its text's start before ": " ("❌ Refund failed" of "❌ Refund failed: $49.00 — …"); NULL for a text
# without one, and for a sale (rendered from its fields: a 5,000-sale burst reads no text).
_TITLE: Final = """CASE WHEN {o}.kind <> 'sale'
           THEN nullif(split_part({o}.payload ->> 'text', ': ', 1), {o}.payload ->> 'text') END"""

# Totals per currency of the covered messages that match `{where}`.
_TOTALS: Final = """(SELECT coalesce(jsonb_object_agg(t.currency, t.total), '{{}}')
          FROM (SELECT currency, sum(amount) AS total
                  FROM covered
                 WHERE {where} AND currency IS NOT NULL AND amount IS NOT NULL
                 GROUP BY currency) AS t)"""
# What a burst message says about the messages it covers (the CTE `covered` of the statement it ends): their
# kind, count, first and last time, totals per currency (all, new sales', renewals'), how many are renewals, how many
# have each title (of all, not only the listed: a burst of refunds failed and canceled counts each kind), and the
# first $2 with their payloads (a sale's fields, any other ping's text). Shared by the claim and the look-up of a
# recorded attempt, so both describe it the same way.
_SUMMARY: Final = f"""
       (SELECT o.kind FROM outbox AS o WHERE o.id = (SELECT min(id) FROM covered))  AS kind,
       (SELECT count(*)        FROM covered)                                   AS count,
       (SELECT count(*)        FROM covered WHERE renewal)                     AS renewals,
       (SELECT min(created_at) FROM covered)                                   AS first_at,
       (SELECT max(created_at) FROM covered)                                   AS last_at,
       {_TOTALS.format(where="true")}                                      AS totals,
       {_TOTALS.format(where="NOT renewal")}                               AS sale_totals,
       {_TOTALS.format(where="renewal")}                                   AS renewal_totals,
       (SELECT coalesce(jsonb_object_agg(t.title, t.n), '{{}}')
          FROM (SELECT title, count(*) AS n FROM covered WHERE title IS NOT NULL GROUP BY title) AS t) AS titles,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', f.id, 'amount', f.amount, 'currency', f.currency, 'created_at', f.created_at,
                   'sale', o.payload -> 'sale', 'text', o.payload ->> 'text', 'renewal', f.renewal)
                   ORDER BY f.id), '[]')
          FROM (SELECT * FROM covered ORDER BY id LIMIT $2) AS f
          JOIN outbox AS o ON o.id = f.id)                                     AS listed
"""

# Claims every due post of kind $3 (sales; failure, refund, refund_void, dispute) of channel $1 for one message and
# records the attempt with the set it covers and the Slack channel $4 it goes to (NULL: not known before the call), in
# one statement committed on its own before the call to Slack; answers one row however many it claimed: their kind,
# count, first and last time, totals per currency and the first $2 with their payloads (the message lists ten and
# says "…and N more"). The channel's pace-row lock, held by the caller on another connection, already makes it the
# channel's only poster; SKIP LOCKED keeps the claim from ever waiting on a row someone else holds.
CLAIM_BURST: Final = f"""
WITH due AS (
    SELECT o.id, o.amount, o.currency, o.created_at, {RENEWAL_SALE.format(o="o")} AS renewal,
           {_TITLE.format(o="o")} AS title
      FROM outbox AS o
     WHERE {_BURSTABLE.format(kind="$3")}
     ORDER BY o.id
       FOR UPDATE OF o SKIP LOCKED
), attempt AS (
    INSERT INTO delivery_attempts (outbox_id, channel, covers, slack_channel_id)
    SELECT min(id), $1, array_agg(id ORDER BY id), $4::text FROM due HAVING count(*) > 0
    RETURNING outbox_id
), covered AS (
    SELECT * FROM due
)
SELECT (SELECT outbox_id FROM attempt)                                         AS ref,
""" + _SUMMARY

# The same summary of the sales a recorded burst attempt covers (those still pending).
BURST_VIEW: Final = f"""
WITH covered AS (
    SELECT o.id, o.amount, o.currency, o.created_at, {RENEWAL_SALE.format(o="o")} AS renewal,
           {_TITLE.format(o="o")} AS title
      FROM outbox AS o
     WHERE o.id IN (SELECT unnest(covers) FROM delivery_attempts WHERE outbox_id = $1)
       AND o.status = 'pending'
)
SELECT $1::bigint                                                              AS ref,
""" + _SUMMARY

# The channel's burst attempt whose outcome is unknown (the process died during the call, or Slack timed out or
# answered 5xx) or that Slack refused (`refused`: not in doubt), with how long its backoff still runs. While it exists
# nothing else is claimed for the channel.
IN_DOUBT: Final = """
SELECT outbox_id AS ref, started_at, failures, refused, slack_channel_id,
       greatest(extract(epoch FROM retry_at - now()), 0)::float8 AS wait_seconds
  FROM delivery_attempts
 WHERE channel = $1 AND covers IS NOT NULL
 ORDER BY outbox_id
 LIMIT 1
"""

# Slack has burst $1: store it as a summary and mark exactly the sales it announced, in one statement.
SETTLE: Final = """
WITH summary AS (
    INSERT INTO outbox (dedupe_key, channel, kind, payload, amount, status, delivered_at, attempts,
                        slack_channel, slack_ts)
    VALUES             ($2,         $3,      'burst', $4,   NULL,   'delivered', now(), 1, $5, $6)
    RETURNING id
), covered AS (
    UPDATE outbox SET status = 'coalesced', coalesced_into = (SELECT id FROM summary), delivered_at = now()
     WHERE id IN (SELECT unnest(covers) FROM delivery_attempts WHERE outbox_id = $1) AND status = 'pending'
)
DELETE FROM delivery_attempts WHERE outbox_id = $1
"""

# $3: 1 after a failed call, 0 when nothing was tried (a look-up Slack could not answer, a 429). $4: whether Slack's
# answer says nothing of it landed.
MARK_RETRY: Final = """
UPDATE delivery_attempts SET retry_at = $2, failures = failures + $3, refused = $4 WHERE outbox_id = $1
"""

# Committed before the burst is sent again: from here on it may be in Slack, in channel $2.
RESENDING: Final = """
UPDATE delivery_attempts SET refused = false, slack_channel_id = $2 WHERE outbox_id = $1
"""

MARK_FAILED: Final = """
WITH failed AS (
    UPDATE outbox SET status = 'failed', attempts = attempts + 1, delivered_at = now(), last_error = $2
     WHERE id IN (SELECT unnest(covers) FROM delivery_attempts WHERE outbox_id = $1) AND status = 'pending'
)
DELETE FROM delivery_attempts WHERE outbox_id = $1
"""


@dataclass(frozen=True, slots=True)
class ListedSale:
    """One of the first sales of a burst, as its message lists it; `sale` is what the intake stored for it."""

    id: int
    amount: int | None
    currency: str | None
    created_at: dt.datetime
    sale: dict[str, Any]
    text: str | None = None  # a failure, refund or dispute ping's (a sale ping is rendered from `sale`)
    renewal: bool = False  # a subscription's renewal (outbox.RENEWAL_SALE), not a new sale


@dataclass(frozen=True, slots=True)
class BurstSummary:
    """What one coalesced message covers: identified by `ref` (its first sale's outbox id)."""

    ref: int
    count: int
    totals: dict[str, int]
    first_at: dt.datetime
    last_at: dt.datetime
    listed: tuple[ListedSale, ...]
    kind: str = "sale"  # or "failure", "refund", "dispute"
    renewals: int = 0  # of `count`, sales that renewed a subscription (held to the hour's end: SUBSCRIPTION_RENEWALS)
    sale_totals: dict[str, int] = field(default_factory=dict)  # the new sales' totals per currency
    renewal_totals: dict[str, int] = field(default_factory=dict)  # the renewals'
    titles: dict[str, int] = field(default_factory=dict)  # of `count`, how many pings have each title (_TITLE)


@dataclass(frozen=True, slots=True)
class InDoubt:
    """A burst attempt whose outcome is unknown, or that was refused; `wait_seconds` until its retry is due (0: now)."""

    ref: int
    started_at: dt.datetime
    failures: int
    wait_seconds: float
    refused: bool = False  # Slack refused its last call: nothing of it is in Slack, no look-up needed
    slack_channel_id: str | None = None  # where it was sent (None: not known before the call)


def _summary(row: Any) -> BurstSummary | None:
    if row is None or row["ref"] is None or not row["count"]:
        return None
    listed = tuple(ListedSale(id=s["id"], amount=s["amount"], currency=s["currency"],
                              created_at=dt.datetime.fromisoformat(s["created_at"]), sale=s["sale"] or {},
                              text=s.get("text"), renewal=s.get("renewal") is True)
                   for s in row["listed"])
    return BurstSummary(ref=row["ref"], count=row["count"], first_at=row["first_at"], last_at=row["last_at"],
                        totals=_amounts(row["totals"]), listed=listed, kind=row["kind"], renewals=row["renewals"],
                        sale_totals=_amounts(row["sale_totals"]), renewal_totals=_amounts(row["renewal_totals"]),
                        titles=_amounts(row["titles"]))


def _amounts(totals: dict[str, Any]) -> dict[str, int]:
    return {c: int(t) for c, t in totals.items()}


async def waiting(db: Executor, channel: str, kind: str) -> int:
    """0, 1 or 2: whether several posts of `kind` wait for the channel (then they go out as one message)."""
    value: int = await db.fetchval(WAITING, channel, kind)
    return value


async def claim(db: Executor, channel: str, *, kind: str, listed: int,
                slack_channel: str | None = None) -> BurstSummary | None:
    """Claim every due post of `kind` of `channel` for one message to be sent to `slack_channel` (committed: call it
    on a connection of its own, not inside the transaction holding the channel); None when there is none."""
    return _summary(await db.fetchrow(CLAIM_BURST, channel, listed, kind, slack_channel))


async def view(db: Executor, ref: int, *, listed: int) -> BurstSummary | None:
    """The summary of the sales burst attempt `ref` covers."""
    return _summary(await db.fetchrow(BURST_VIEW, ref, listed))


async def in_doubt(db: Executor, channel: str) -> InDoubt | None:
    """The channel's burst attempt with an unknown outcome, if any."""
    row = await db.fetchrow(IN_DOUBT, channel)
    return InDoubt(**dict(row)) if row else None


async def settle(db: Executor, *, ref: int, channel: str, payload: dict[str, Any], slack_channel: str | None,
                 slack_ts: str | None) -> None:
    """Slack has burst `ref`: record the summary, mark the sales it covers, forget the attempt."""
    await db.execute(SETTLE, ref, f"burst:{channel}:{ref}", channel, payload, slack_channel, slack_ts)


async def mark_retry(db: Executor, ref: int, *, retry_at: dt.datetime, refused: bool, failed: bool = True) -> None:
    """Try burst `ref` again at `retry_at`; its record stays: unless Slack `refused` the call, it is looked up in
    Slack before it is resent. `failed`: the call counts towards giving up on an error we don't know."""
    await db.execute(MARK_RETRY, ref, retry_at, int(failed), refused)


async def resending(db: Executor, ref: int, *, slack_channel: str | None) -> None:
    """Before burst `ref` is sent again (committed on its own): it may be in `slack_channel` from now on."""
    await db.execute(RESENDING, ref, slack_channel)


async def mark_failed(db: Executor, ref: int, *, error: str) -> None:
    """Slack refused burst `ref` for good: fail its sales, forget the attempt."""
    await db.execute(MARK_FAILED, ref, error[:1000])
