"""SQL for `salespulse backfill`'s listing of subscriptions: which of them the store already knows.

A subscription known from any event (webhook, poll, the backfill's own Events API days) keeps its ledger as those
events wrote it; only one no event told is stored from the listing (bot/stripe/backfill.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from queries.executor import Executor

# Every writer of a subscription's snapshots writes its state row in the same transaction
# (bot/subscriptions/apply.py), so a subscription with any snapshot has one.
KNOWN: Final = "SELECT id FROM subscriptions WHERE id = ANY($1::text[])"


async def known_subscriptions(db: Executor, ids: Sequence[str]) -> set[str]:
    """Those of these subscription ids the store already holds (call it holding their locks: intake.lock_refs)."""
    if not ids:
        return set()
    return {r["id"] for r in await db.fetch(KNOWN, list(ids))}
