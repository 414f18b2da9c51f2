"""SQL for the intake in fewer round trips: the batch logged and its payments locked at once; the common batch's
new orders, their refs, checkouts and messages written in one statement.

Their rows go as one JSON parameter per table (json_rows(): an array of row arrays, read back with
`jsonb_array_elements($n::text::jsonb) AS e` and `(e->>i)::type`), not one array per column: asyncpg checks each
array element in Python (~1.3 µs each), the JSON encoder does not. Times go as whole microseconds since the epoch
(`micros()`, read with `micros_at((e->>i)::bigint)`, migration 0021): exact, and an int costs the encoder nothing
where an ISO string cost an isoformat() and a call of its `default=` hook, ~7 per event. jsonb, not json: parsed
once, where json's `->>` re-scans the row's text for every field (+50% PostgreSQL CPU for the batch); `::text`
first, or the connection's jsonb codec would encode the string once more."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Final

from queries.executor import Executor
from queries.instants import micros
from queries.intake import (
    CHECKOUT_MERGE,
    CheckoutRow,
    OrderRow,
    QueuedMessage,
    checkout_values,
    message_values,
    order_values,
)
from queries.intake_log import LogRow

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

# The common batch — new orders only, no merge — in one round trip instead of four: its orders, their refs,
# checkouts and messages, as INSERT_ORDERS, INSERT_REFS, UPSERT_CHECKOUTS and ENQUEUE would write them one after
# the other (the refs' foreign keys are checked at the end of the statement, when the orders exist). Each row's
# fields are in the order of its INSERT's columns (order_values(), pairs, checkout_values(), message_values()).
WRITE_NEW: Final = """
WITH new_orders AS (
INSERT INTO orders (id, payment_status, amount_total, amount_refunded, currency, customer_email, customer_name,
                    product_name, affiliate_id, checkout_session_id, payment_intent_id, invoice_id, charge_id,
                    failure_reason, livemode, metadata, created_at, refunded_at, status_at)
SELECT e->>0, e->>1, (e->>2)::bigint, (e->>3)::bigint, e->>4, e->>5, e->>6, e->>7, e->>8, e->>9, e->>10, e->>11,
       e->>12, e->>13, (e->>14)::bool, e->15, micros_at((e->>16)::bigint), micros_at((e->>17)::bigint),
       micros_at((e->>18)::bigint)
  FROM jsonb_array_elements($1::text::jsonb) AS e
), new_refs AS (
INSERT INTO payment_refs (ref, order_id)
SELECT e->>0, e->>1 FROM jsonb_array_elements($2::text::jsonb) AS e
ON CONFLICT (ref) DO NOTHING
), checkouts AS (
INSERT INTO checkout_sessions (id, status, amount_total, currency, customer_email, metadata,
                               created_at, completed_at, status_at)
SELECT e->>0, e->>1, (e->>2)::bigint, e->>3, e->>4, e->5, micros_at((e->>6)::bigint),
       micros_at((e->>7)::bigint), micros_at((e->>8)::bigint)
  FROM jsonb_array_elements($3::text::jsonb) AS e
{checkout_merge})
INSERT INTO outbox (dedupe_key, channel, kind, payload, amount, currency, available_at)
SELECT e->>0, e->>1, e->>2, e->3, (e->>4)::bigint, e->>5, now() + make_interval(secs => (e->>6)::float8)
  FROM jsonb_array_elements($4::text::jsonb) AS e
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING dedupe_key
""".replace("{checkout_merge}", CHECKOUT_MERGE.strip("\n"))


def _json_value(value: object) -> str:
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        return value.isoformat()  # offset and microseconds included: ::timestamptz reads back the same instant
    raise TypeError(f"json_rows() sends tz-aware datetimes, not {type(value).__name__} {value!r}")


# ensure_ascii as json.dumps(): a lone surrogate goes out as "\ud800", which jsonb refuses (a DataError raised
# by the statement, as when the metadata went as JSON text of its own); NaN and Infinity are not JSON.
_ROWS: Final = json.JSONEncoder(default=_json_value, separators=(",", ":"), check_circular=False, allow_nan=False)


def json_rows(rows: Sequence[Any]) -> str:
    """Row tuples (or single values) → one JSON array: str, int (digits, so `(e->>i)::bigint` is exact), float,
    bool, None (`e->>i` is NULL), aware datetimes (ISO 8601) and dicts (nested, read as jsonb with `e->i`)."""
    return _ROWS.encode(rows)


async def write_new(db: Executor, orders: Sequence[OrderRow], pairs: Sequence[tuple[str, str]],
                    checkouts: Sequence[CheckoutRow], messages: Sequence[QueuedMessage]) -> set[str]:
    """New orders, their refs, checkouts and messages in one statement (each list non-empty, every order new);
    returns the message keys actually queued, as enqueue() does."""
    args = (json_rows([order_values(o, nested=True) for o in orders]), json_rows(pairs),
            json_rows(checkout_values(checkouts, nested=True)), json_rows(message_values(messages, nested=True)))
    return {r["dedupe_key"] for r in await db.fetch(WRITE_NEW, *args)}


async def log_and_lock(db: Executor, rows: Sequence[LogRow], refs: Sequence[str]) -> set[tuple[str, str]]:
    """Lock these payment refs until commit, then record the received events (each body stored as received, the
    raw JSON text: no decode/encode round trip); return the (source, event_id) keys that were new."""
    values = [(r.source, r.event_id, r.event_type, r.status, r.livemode, micros(r.event_created_at), r.via,
               r.last_error) for r in rows]
    new = await db.fetch(LOG_AND_LOCK, json_rows(values), [r.body for r in rows], json_rows(sorted(set(refs))))
    return {(r["source"], r["event_id"]) for r in new}
