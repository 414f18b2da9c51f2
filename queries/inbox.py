"""SQL for the webhook inbox (migration 0018): events stored as received while the intake writers are busy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# Everything waiting, in one statement (its own transaction): the senders' 2xx follow its commit.
STORE: Final = """
INSERT INTO webhook_inbox (source, via, event_id, body)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
RETURNING id, event_id
"""
# The rows this process stored, taken for applying in the caller's transaction; a row another replica is applying
# (it took it as left behind) is skipped rather than waited for.
TAKE: Final = """
DELETE FROM webhook_inbox
 WHERE id IN (SELECT id FROM webhook_inbox WHERE id = ANY($1::bigint[]) FOR UPDATE SKIP LOCKED)
RETURNING id
"""
# Rows older than $1 seconds — their process stopped, or is far behind — oldest first; read only: TAKE decides
# who applies them.
LEFT_BEHIND: Final = """
SELECT id, source, via, event_id, body
  FROM webhook_inbox
 WHERE received_at < now() - make_interval(secs => $1)
 ORDER BY id
 LIMIT $2
"""
BACKLOG: Final = "SELECT count(*) AS waiting, min(received_at) AS oldest FROM webhook_inbox"


@dataclass(frozen=True, slots=True)
class Received:
    """An event as it was received: enough to parse and apply it again."""

    source: str
    via: str
    event_id: str
    body: str


@dataclass(frozen=True, slots=True)
class Stored(Received):
    """A received event with its inbox id."""

    id: int


@dataclass(frozen=True, slots=True)
class Backlog:
    """Events received and not yet applied."""

    waiting: int
    oldest: dt.datetime | None


async def store(db: Executor, events: Sequence[Received]) -> list[int]:
    """Store events as received; their ids, in the order given."""
    rows = await db.fetch(STORE, [e.source for e in events], [e.via for e in events],
                          [e.event_id for e in events], [e.body for e in events])
    ids: dict[str, list[int]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):  # a sequence hands out ids in insertion order
        ids.setdefault(row["event_id"], []).append(row["id"])
    return [ids[e.event_id].pop(0) for e in events]


async def take(db: Executor, ids: Sequence[int]) -> set[int]:
    """Delete the given rows, except those another transaction holds; the ids deleted."""
    return {r["id"] for r in await db.fetch(TAKE, list(ids))}


async def left_behind(db: Executor, *, older_than: float, limit: int) -> list[Stored]:
    """Up to `limit` rows received more than `older_than` seconds ago, oldest first (not taken: see `take`)."""
    rows = await db.fetch(LEFT_BEHIND, older_than, limit)
    return [Stored(r["source"], r["via"], r["event_id"], r["body"], r["id"]) for r in rows]


async def backlog(db: Executor) -> Backlog:
    """How many events wait in the inbox, and since when."""
    row = await db.fetchrow(BACKLOG)
    return Backlog(int(row["waiting"]), row["oldest"])
