"""Applying events stored in the inbox: each row is taken (deleted) in the transaction that applies it, so it is
applied once whichever process gets to it, and one event the rules fail on is kept as an error rather than
holding the inbox up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from bot.db import DB_UNAVAILABLE
from bot.intake.batch import Submission, refuse
from bot.intake.result import IntakeResult
from queries import inbox

log = logging.getLogger(__name__)

Ingest = Callable[[asyncpg.Connection, list[Submission]], Awaitable[list[IntakeResult]]]
Row = tuple[int, Submission]  # inbox id, the event
Applied = list[tuple[Submission, IntakeResult]]  # each event applied, with its outcome, once committed


async def apply_stored(conn: asyncpg.Connection, rows: Sequence[Row], ingest: Ingest) -> Applied:
    """Take the rows (skipping any another process is applying or has applied) and apply them in one transaction;
    return the events taken, each with its outcome, once committed. A batch that deadlocks or fails other than by the
    database is redone an event at a time; the database being away (a deadlock again, too) is raised, and the rows
    stay for a later try."""
    try:
        async with conn.transaction():
            taken = await inbox.take(conn, [i for i, _ in rows])
            subs = [sub for i, sub in rows if i in taken]
            results = await ingest(conn, subs)
        return list(zip(subs, results, strict=True))
    except asyncpg.TransactionRollbackError as exc:
        log.info("inbox batch of %d deadlocked, redone one event at a time: %s", len(rows), exc)
    except DB_UNAVAILABLE:
        raise
    except Exception:
        log.exception("inbox batch of %d failed, redone one event at a time", len(rows))
    return [applied for row in rows for applied in await _apply_one(conn, row, ingest)]


async def _apply_one(conn: asyncpg.Connection, row: Row, ingest: Ingest) -> Applied:
    inbox_id, sub = row
    try:
        async with conn.transaction():
            if not await inbox.take(conn, [inbox_id]):
                return []
            [result] = await ingest(conn, [sub])
        return [(sub, result)]
    except DB_UNAVAILABLE:  # a deadlock too: the rows go back to be tried again, not refused
        raise
    except Exception as exc:  # the rules fail on this event alone: keep it as an error, as a refused one is
        log.exception("stored %s event %s could not be applied", sub.source, sub.event_id)
        async with conn.transaction():
            if not await inbox.take(conn, [inbox_id]):
                return []
            result = await refuse(conn, sub, exc)
        return [(sub, result)]
