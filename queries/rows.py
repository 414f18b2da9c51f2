"""The intake's rows as one JSON parameter per table, and the SQL that reads them back typed.

json_rows() makes an array of row arrays, read back with `jsonb_array_elements($n::text::jsonb) AS e` and
`(e->>i)::type`, not one array per column: asyncpg checks each array element in Python (~1.3 µs each, 23–27 µs for
a 19-column order), the JSON encoder does not (8–9 µs). Times go as whole microseconds since the epoch (`micros()`,
read with `micros_at((e->>i)::bigint)`, migration 0021): exact, and an int costs the encoder nothing where an ISO
string cost an isoformat() and a call of its `default=` hook. jsonb, not json: parsed once, where json's `->>`
re-scans the row's text for every field (+50% PostgreSQL CPU for the batch); `::text` first, or the connection's
jsonb codec would encode the string once more.

Each FROM_* fragment selects one table's rows from the parameter named `{rows}` (filled in with `rows_from()`), in
the order of that table's INSERT columns: the one-statement batch (queries/intake_new.py) and the step-by-step
statements (queries/intake.py) read them the same way."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Final


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


def rows_from(fragment: str, param: str) -> str:
    """A FROM_* fragment reading the rows of parameter `param` ("$1")."""
    return fragment.replace("{rows}", param)


# orders, in ORDER_COLUMNS order (queries.intake.order_values()).
FROM_ORDERS: Final = """
SELECT e->>0 AS id, e->>1 AS payment_status, (e->>2)::bigint AS amount_total, (e->>3)::bigint AS amount_refunded,
       e->>4 AS currency, e->>5 AS customer_email, e->>6 AS customer_name, e->>7 AS product_name,
       e->>8 AS affiliate_id, e->>9 AS checkout_session_id, e->>10 AS payment_intent_id, e->>11 AS invoice_id,
       e->>12 AS charge_id, e->>13 AS failure_reason, (e->>14)::bool AS livemode, e->15 AS metadata,
       micros_at((e->>16)::bigint) AS created_at, micros_at((e->>17)::bigint) AS refunded_at,
       micros_at((e->>18)::bigint) AS status_at
  FROM jsonb_array_elements({rows}::text::jsonb) AS e"""

# payment_refs: (ref, order id) pairs.
FROM_REFS: Final = """
SELECT e->>0, e->>1 FROM jsonb_array_elements({rows}::text::jsonb) AS e"""

# checkout_sessions (queries.intake.checkout_values()).
FROM_CHECKOUTS: Final = """
SELECT e->>0, e->>1, (e->>2)::bigint, e->>3, e->>4, e->5, micros_at((e->>6)::bigint),
       micros_at((e->>7)::bigint), micros_at((e->>8)::bigint)
  FROM jsonb_array_elements({rows}::text::jsonb) AS e"""

# outbox messages (queries.intake.message_values()): the last field is the seconds before one may be sent.
FROM_MESSAGES: Final = """
SELECT e->>0, e->>1, e->>2, e->3, (e->>4)::bigint, e->>5, now() + make_interval(secs => (e->>6)::float8)
  FROM jsonb_array_elements({rows}::text::jsonb) AS e"""
