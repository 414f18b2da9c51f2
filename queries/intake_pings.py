"""SQL for what a merge of two orders (one payment) does to the tables: refs, failures, disputes, sale pings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from queries.executor import Executor
from queries.outbox import HELD, SALE_SHOWN

# An order merged away hands its refs, failures and disputes to the order it went into, then goes; the rollup
# triggers (0007) take a deleted completed order out of its bucket as the update puts the survivor in.
MOVE_REFS: Final = """
UPDATE payment_refs AS p SET order_id = v.survivor
  FROM unnest($1::text[], $2::text[]) AS v(loser, survivor)
 WHERE p.order_id = v.loser
"""
MOVE_FAILURES: Final = """
UPDATE payment_failures AS f SET order_id = v.survivor
  FROM unnest($1::text[], $2::text[]) AS v(loser, survivor)
 WHERE f.order_id = v.loser
"""
MOVE_DISPUTES: Final = """
UPDATE disputes AS d SET order_id = v.survivor
  FROM unnest($1::text[], $2::text[]) AS v(loser, survivor)
 WHERE d.order_id = v.loser
"""
DELETE_ORDERS: Final = "DELETE FROM orders WHERE id = ANY($1::text[])"

# The two pings of a merge, locked first: a worker records its attempt on a ping only under a key-share lock
# (outbox.RECORD_ATTEMPT), so from here on none can start sending either, and one that has is seen below.
LOCK_PINGS: Final = "SELECT id FROM outbox WHERE dedupe_key = ANY($1::text[]) ORDER BY id FOR UPDATE"
# Then, in a statement of its own (a fresh snapshot, taken after any attempt that held the lock committed): a
# message tried already, or covered by an attempt (its own, recorded just before the worker calls Slack, or a
# burst's, claimed with its rows locked), may be in Slack: it counts as sent. The merge does not wait for the
# channel: a worker holds it across a Slack call, and this transaction holds rollup rows every intake batch needs.
SALE_PINGS: Final = """
SELECT o.id, o.dedupe_key, o.available_at,
       o.status <> 'pending' OR o.attempts > 0
       OR EXISTS (SELECT FROM delivery_attempts AS a WHERE a.outbox_id = o.id OR o.id = ANY (a.covers)) AS sent
  FROM outbox AS o
 WHERE o.dedupe_key = ANY($1::text[])
"""
DROP_PING: Final = "DELETE FROM outbox WHERE id = $1"  # its edits go with it (migration 0030)
REKEY_PING: Final = "UPDATE outbox SET dedupe_key = $2 WHERE id = $1"
HASTEN_PING: Final = "UPDATE outbox SET available_at = least(available_at, $2) WHERE id = $1"

# Sale pings refreshed with what the batch learnt about their order (the sale's fields: the delivery worker renders
# the message); a settled one is released at once. One that may be in Slack already (not outbox.HELD: posted, or
# perhaps being read by a worker this instant) is also edited in place when what it shows changed: the product,
# customer, affiliate or amount (a checkout session or invoice that came after the settle window, as a Stripe retry
# does). Its time and lateness are not worth an edit, and an edit keeps the lateness the ping was posted with.
# The edit is judged on every ping as last committed (`k`); only the rows it rewrites are locked (a delivered one
# only when an edit changes it), and only those it can lock.
# A row it skips is one a worker is settling this instant (batches of one order run one after the other): posted
# with what was committed, so the edit judged on that is the right one. FOR NO KEY UPDATE, which a worker recording
# its attempt under a key-share lock does not hold up. A summarised ping ('coalesced') has no message of its own.
# Edits of a ping are numbered (`sale:<id>:edit:<n>`; one order's batches run one after the other), so one never
# collides with an older edit that showed the same (fields gone A → B → A). Each row finds its values by its key's
# place in $1 (array_position), not by joining the arrays: planned on statistics that call the locked rows one,
# that join read all the arrays again for every row — 3.4 of 4.4 ms for a batch of 100.
REFRESH_PINGS: Final = f"""
WITH k AS (
    SELECT o.id, o.dedupe_key, o.channel, o.status, s.out,
           CASE WHEN s.out THEN jsonb_set(n.payload, '{{sale,late}}', coalesce(o.payload #> '{{sale,late}}', 'false'))
                ELSE n.payload END AS payload,
           n.amount, n.currency, n.release,
           ({SALE_SHOWN.format(p="o.payload")}, o.amount, o.currency)
             IS DISTINCT FROM ({SALE_SHOWN.format(p="n.payload")}, n.amount, n.currency) AS shows_more
      FROM outbox AS o,
           LATERAL (SELECT array_position($1::text[], o.dedupe_key) AS i) AS i,
           LATERAL (SELECT ($2::text[])[i.i]::jsonb AS payload, ($3::bigint[])[i.i] AS amount,
                           ($4::text[])[i.i] AS currency, ($5::bool[])[i.i] AS release) AS n,
           LATERAL (SELECT NOT {HELD} AS out) AS s
     WHERE o.dedupe_key = ANY($1::text[]) AND o.status IN ('pending', 'delivered') AND o.op = 'post'
), l AS (
    SELECT o.id FROM outbox AS o WHERE o.id IN (SELECT id FROM k WHERE k.status = 'pending' OR k.shows_more)
       FOR NO KEY UPDATE OF o SKIP LOCKED
), edits AS (
    INSERT INTO outbox (dedupe_key, channel, kind, payload, amount, currency, op, target_id)
    SELECT k.dedupe_key || ':edit:' || (SELECT count(*) + 1 FROM outbox AS e WHERE e.target_id = k.id),
           k.channel, 'sale', k.payload, k.amount, k.currency, 'update', k.id
      FROM k
     WHERE k.out AND k.shows_more
    ON CONFLICT (dedupe_key) DO NOTHING
)
UPDATE outbox AS o
   SET payload = k.payload, amount = k.amount, currency = k.currency,
       available_at = CASE WHEN k.release AND o.status = 'pending' AND o.attempts = 0
                           THEN least(o.available_at, now()) ELSE o.available_at END
  FROM k JOIN l ON l.id = k.id  -- the pending ones, and those an edit changes
 WHERE o.id = k.id
"""


@dataclass(frozen=True, slots=True)
class PingUpdate:
    """A sale ping as its order now stands (the sale's fields, rendered when it is posted); `release`: it names
    everything, send it without waiting."""

    dedupe_key: str
    payload: dict[str, Any]
    amount: int | None
    currency: str | None
    release: bool


async def merge_orders(db: Executor, pairs: Sequence[tuple[str, str]]) -> None:
    """(stored order merged away, survivor): move what points at the first to the second, delete the first."""
    if not pairs:
        return
    losers, survivors = [p[0] for p in pairs], [p[1] for p in pairs]
    for sql in (MOVE_REFS, MOVE_FAILURES, MOVE_DISPUTES):
        await db.execute(sql, losers, survivors)
    await db.execute(DELETE_ORDERS, losers)


async def merge_pings(db: Executor, pairs: Sequence[tuple[str, str]]) -> None:
    """Leave one sale ping, keyed by the survivor, for each (order merged away, survivor).

    One statement per pair: merges are rare (a basil subscription payment whose events crossed)."""
    for loser, survivor in pairs:
        keep, lose = f"sale:{survivor}", f"sale:{loser}"
        await db.execute(LOCK_PINGS, [keep, lose])
        rows = {r["dedupe_key"]: r for r in await db.fetch(SALE_PINGS, [keep, lose])}
        s, gone = rows.get(keep), rows.get(lose)
        if gone is None:
            continue
        if s is None:
            await db.execute(REKEY_PING, gone["id"], keep)
        elif not gone["sent"]:
            await db.execute(DROP_PING, gone["id"])
            if not s["sent"]:
                await db.execute(HASTEN_PING, s["id"], gone["available_at"])
        elif not s["sent"]:
            await db.execute(DROP_PING, s["id"])
            await db.execute(REKEY_PING, gone["id"], keep)
        # Both already sent: the link came after both pings were out; nothing left to undo.


async def refresh_pings(db: Executor, updates: Sequence[PingUpdate]) -> None:
    """Refresh the sale pings of these orders: the pending ones (the settled released), and an edit of each that
    may be in Slack and now shows more."""
    if updates:
        await db.execute(REFRESH_PINGS, [u.dedupe_key for u in updates], [json.dumps(u.payload) for u in updates],
                         [u.amount for u in updates], [u.currency for u in updates], [u.release for u in updates])
