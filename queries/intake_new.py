"""SQL for the intake in fewer round trips: the batch logged and its payments locked at once; the common batch's
new orders, their refs, checkouts and messages written in one statement. Rows go as JSON, one parameter per
table (queries/rows.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from queries.executor import Executor
from queries.instants import micros
from queries.intake import (
    CHECKOUT_MERGE,
    LINK_DISPUTES,
    NEW_REFS,
    CheckoutRow,
    OrderRow,
    QueuedMessage,
    checkout_values,
    message_values,
    order_values,
)
from queries.intake_log import LogRow
from queries.rows import CHECKOUTS, MESSAGES, ORDERS, json_rows

# The received events logged (new ones returned) after LOCK_REFS ($3: the payment refs of the batch's events, as
# json_rows()), in one round trip: the locks are taken first (a one-time filter), in key order, and held until
# commit; the orders are read after, by the next statement, so no other batch's order of the same payment can be
# missed. $1: log rows (source, event_id, event_type, status, livemode, event_created_at, via, last_error); $2:
# their bodies, the raw JSON text as received, alongside as text[] (cheaper than escaped inside $1).
LOG_AND_LOCK: Final = """
WITH locked AS (
SELECT count(*) AS n
  FROM (SELECT pg_advisory_xact_lock(k)
          FROM (SELECT DISTINCT hashtextextended(r, 0) AS k FROM jsonb_array_elements_text($3::text::jsonb) AS r
                 ORDER BY 1) AS keys) AS l
)
INSERT INTO webhook_logs (source, event_id, event_type, status, last_error, livemode, payload, event_created_at, via)
SELECT e->>0, e->>1, e->>2, e->>3, e->>7, (e->>4)::bool, p::jsonb, micros_at((e->>5)::bigint), e->>6
  FROM ROWS FROM (jsonb_array_elements($1::text::jsonb), unnest($2::text[])) AS v(e, p)
 WHERE (SELECT n FROM locked) >= 0
ON CONFLICT (source, event_id) DO NOTHING
RETURNING source, event_id
"""

# The common batch — new orders only, no merge — in one round trip instead of four: its orders, their refs (and the
# disputes waiting for them), checkouts and messages, as INSERT_ORDERS, INSERT_REFS, UPSERT_CHECKOUTS and ENQUEUE
# would write them one after the other (the foreign keys are checked at the end of the statement, when the orders
# exist). Each row's fields are in the order of its INSERT's columns (order_values(), pairs, checkout_values(),
# message_values()).
WRITE_NEW: Final = f"""
WITH new_orders AS ({ORDERS.insert("$1")}
), new_refs AS ({NEW_REFS.format(param="$2")}
), linked AS ({LINK_DISPUTES.strip()}
), checkouts AS ({CHECKOUTS.insert("$3")}
{CHECKOUT_MERGE.strip()}){MESSAGES.insert("$4")}
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING dedupe_key
"""


async def write_new(db: Executor, orders: Sequence[OrderRow], pairs: Sequence[tuple[str, str]],
                    checkouts: Sequence[CheckoutRow], messages: Sequence[QueuedMessage]) -> set[str]:
    """New orders, their refs, checkouts and messages in one statement (each list non-empty, every order new);
    returns the message keys actually queued, as enqueue() does."""
    args = (json_rows([order_values(o) for o in orders]), json_rows(pairs),
            json_rows(checkout_values(checkouts)), json_rows(message_values(messages)))
    return {r["dedupe_key"] for r in await db.fetch(WRITE_NEW, *args)}


async def log_and_lock(db: Executor, rows: Sequence[LogRow], refs: Sequence[str]) -> set[tuple[str, str]]:
    """Lock these payment refs until commit, then record the received events (each body stored as received, the
    raw JSON text: no decode/encode round trip); return the (source, event_id) keys that were new."""
    values = [(r.source, r.event_id, r.event_type, r.status, r.livemode, micros(r.event_created_at), r.via,
               r.last_error) for r in rows]
    new = await db.fetch(LOG_AND_LOCK, json_rows(values), [r.body for r in rows], json_rows(sorted(set(refs))))
    return {(r["source"], r["event_id"]) for r in new}
