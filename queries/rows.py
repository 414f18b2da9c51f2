"""The intake's rows as one JSON parameter per table, and the SQL that reads them back typed.

json_rows() makes an array of row arrays, read back with `jsonb_array_elements($n::text::jsonb) AS e` and
`(e->>i)::type`, not one array per column: asyncpg checks each array element in Python (~1.3 µs each, 23–27 µs for
a 19-column order), the JSON encoder does not (8–9 µs). Times go as whole microseconds since the epoch (`micros()`,
read with `micros_at((e->>i)::bigint)`, migration 0021): exact, and an int costs the encoder nothing where an ISO
string cost an isoformat() and a call of its `default=` hook. jsonb, not json: parsed once, where json's `->>`
re-scans the row's text for every field (+50% PostgreSQL CPU for the batch); `::text` first, or the connection's
jsonb codec would encode the string once more.

Each table's row is described once, as data (a RowShape: its columns in field order, each with how it is read
back); the one-statement batch (queries/intake_new.py) and the step-by-step statements (queries/intake.py) are
built from the same shapes, so a field cannot be read from another field's position."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from queries.instants import micros


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


# How a column comes back out of its row's JSON array (`e`, field `{i}`): JSON text as text, digits as bigint,
# nested JSON as jsonb, integer microseconds as timestamptz (micros_at(), migration 0021), and a delay in seconds
# (a float) as the database's now() plus that many seconds.
READ: Final = {
    "text": "e->>{i}",
    "bigint": "(e->>{i})::bigint",
    "bool": "(e->>{i})::bool",
    "jsonb": "e->{i}",
    "micros": "micros_at((e->>{i})::bigint)",
    "delay": "now() + make_interval(secs => (e->>{i})::float8)",
}


@dataclass(frozen=True)
class RowShape:
    """One table's rows as json_rows() sends them: its columns in field order, each with how it is read back."""

    table: str
    columns: tuple[tuple[str, str], ...]  # (column, a READ key)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def positions(self, kind: str) -> tuple[int, ...]:
        """The fields read back as `kind` ("micros": the ones to send as micros())."""
        return tuple(i for i, (_, k) in enumerate(self.columns) if k == kind)

    def json(self, rows: Sequence[Sequence[Any]]) -> str:
        """Row tuples in column order, their times aware datetimes → json_rows(), the times as micros()."""
        times = self.positions("micros")
        return json_rows([tuple(micros(v) if i in times else v for i, v in enumerate(row)) for row in rows])

    def select(self, param: str) -> str:
        """SELECT the rows of parameter `param` ("$1"), typed and named as the table's columns."""
        fields = ", ".join(f"{READ[kind].format(i=i)} AS {name}" for i, (name, kind) in enumerate(self.columns))
        return f"\nSELECT {fields}\n  FROM jsonb_array_elements({param}::text::jsonb) AS e"

    def insert(self, param: str) -> str:
        """INSERT the rows of parameter `param` into the table (a statement's head: ON CONFLICT may follow)."""
        return f"\nINSERT INTO {self.table} ({', '.join(self.names)})" + self.select(param)


ORDERS: Final = RowShape("orders", (
    ("id", "text"), ("payment_status", "text"), ("amount_total", "bigint"), ("amount_refunded", "bigint"),
    ("currency", "text"), ("customer_email", "text"), ("customer_name", "text"), ("product_name", "text"),
    ("affiliate_id", "text"), ("checkout_session_id", "text"), ("payment_intent_id", "text"), ("invoice_id", "text"),
    ("charge_id", "text"), ("failure_reason", "text"), ("livemode", "bool"), ("metadata", "jsonb"),
    ("created_at", "micros"), ("refunded_at", "micros"), ("status_at", "micros"), ("refund_ledger", "jsonb")))
REFS: Final = RowShape("payment_refs", (("ref", "text"), ("order_id", "text")))
CHECKOUTS: Final = RowShape("checkout_sessions", (
    ("id", "text"), ("status", "text"), ("amount_total", "bigint"), ("currency", "text"), ("customer_email", "text"),
    ("metadata", "jsonb"), ("created_at", "micros"), ("completed_at", "micros"), ("status_at", "micros")))
# A message's last field is the seconds before the worker may claim it (a sale settling; the database's clock).
MESSAGES: Final = RowShape("outbox", (
    ("dedupe_key", "text"), ("channel", "text"), ("kind", "text"), ("payload", "jsonb"), ("amount", "bigint"),
    ("currency", "text"), ("available_at", "delay")))
FAILURES: Final = RowShape("payment_failures", (
    ("event_id", "text"), ("order_id", "text"), ("amount", "bigint"), ("currency", "text"),
    ("customer_email", "text"), ("reason", "text"), ("created_at", "micros"), ("charge_id", "text"),
    ("event_type", "text"), ("invoice_id", "text"), ("customer_id", "text")))
DECLINES: Final = RowShape("attempt_declines", (
    ("event_id", "text"), ("invoice_id", "text"), ("customer_id", "text"), ("amount", "bigint"),
    ("currency", "text"), ("reason", "text"), ("created_at", "micros")))
DISPUTES: Final = RowShape("disputes", (
    ("id", "text"), ("order_id", "text"), ("charge_id", "text"), ("amount", "bigint"), ("currency", "text"),
    ("reason", "text"), ("status", "text"), ("created_at", "micros")))
