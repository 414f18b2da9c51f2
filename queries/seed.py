"""Binary COPY for `salespulse seed`: the column layout of each table and one typed bulk-load per table."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Final, TypeAlias

import asyncpg

# Binary COPY needs a *binary* encoder for every column. The pool's jsonb codec (bot.db._init_connection)
# is text-only, and asyncpg refuses it for COPY ("no binary format encoder for type jsonb (OID 3802)").
# So these functions want a plain connection (asyncpg.connect, no custom codecs), where asyncpg's built-in
# jsonb codec takes JSON *text*: webhook_logs.payload travels as a str. orders.metadata and
# checkout_sessions.metadata are left out and get their column default '{}', as is updated_at (now()).

ORDER_COLUMNS: Final = (
    "id", "payment_status", "amount_total", "amount_refunded", "currency", "customer_email",
    "customer_name", "product_name", "affiliate_id", "checkout_session_id", "payment_intent_id",
    "failure_reason", "livemode", "created_at", "refunded_at", "status_at",
)
OrderRow: TypeAlias = tuple[
    str, str, int, int, str, str,
    str, str, str | None, str | None, str,
    str | None, bool, dt.datetime, dt.datetime | None, dt.datetime,
]

PAYMENT_FAILURE_COLUMNS: Final = (
    "event_id", "order_id", "amount", "currency", "customer_email", "reason", "created_at",
)
PaymentFailureRow: TypeAlias = tuple[str, str, int, str, str, str, dt.datetime]

CHECKOUT_SESSION_COLUMNS: Final = (
    "id", "status", "amount_total", "currency", "customer_email", "created_at", "completed_at", "status_at",
)
CheckoutSessionRow: TypeAlias = tuple[str, str, int, str, str | None, dt.datetime, dt.datetime | None,
                                      dt.datetime]

WEBHOOK_LOG_COLUMNS: Final = (
    "source", "event_id", "event_type", "status", "last_error", "livemode", "payload",
    "event_created_at", "created_at", "updated_at",
)
WebhookLogRow: TypeAlias = tuple[str, str, str, str, str | None, bool, str, dt.datetime, dt.datetime,
                                 dt.datetime]


# How the rollup triggers (0007, 0011) are kept out of the COPY, so REBUILD_ROLLUPS runs once at the end instead
# of the triggers once per chunk. A superuser turns every trigger and foreign-key check off for this transaction
# without taking a lock (the generated rows are consistent); the tables' owner disables the three INSERT rollup
# triggers by name (ALTER TABLE: writers to these tables wait for the seed's commit); anyone else keeps them on.
TRIGGERS_OFF: Final = "SET LOCAL session_replication_role = replica"
TRIGGERS_ON: Final = "SET LOCAL session_replication_role = origin"
DISABLE_ROLLUP_TRIGGERS: Final = """
ALTER TABLE orders DISABLE TRIGGER orders_rollup_insert, DISABLE TRIGGER orders_sales_rollups_insert;
ALTER TABLE checkout_sessions DISABLE TRIGGER checkout_rollups_insert"""
ENABLE_ROLLUP_TRIGGERS: Final = """
ALTER TABLE orders ENABLE TRIGGER orders_rollup_insert, ENABLE TRIGGER orders_sales_rollups_insert;
ALTER TABLE checkout_sessions ENABLE TRIGGER checkout_rollups_insert"""
REBUILD_ROLLUPS: Final = "SELECT sales_rollups_rebuild()"
# Planner statistics for the rebuild's scans (a fresh table has none, and autovacuum has not run yet), and room
# for its aggregates: with the default 4 MB they spill to disk (3 M orders: rebuild 13.7-15.0 s, with 64 MB
# 11.2-12.9 s, alternating).
ANALYZE_SEEDED: Final = "ANALYZE orders, checkout_sessions"
REBUILD_MEMORY: Final = "SET LOCAL work_mem = '64MB'"


class Deferred(enum.Enum):
    """How a seeding transaction keeps the rollup triggers out of its COPY."""

    REPLICA = "replica"  # superuser: session_replication_role
    DISABLED = "disabled"  # owner: the rollup triggers disabled by name


async def triggers_off(conn: asyncpg.Connection) -> Deferred | None:
    """Turn the rollup triggers off for the rest of the transaction, if this role may; how (None: still on)."""
    for how, sql in ((Deferred.REPLICA, TRIGGERS_OFF), (Deferred.DISABLED, DISABLE_ROLLUP_TRIGGERS)):
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves the outer transaction usable
                await conn.execute(sql)
        except asyncpg.InsufficientPrivilegeError:
            continue
        return how
    return None


async def rebuild_rollups(conn: asyncpg.Connection, how: Deferred) -> None:
    """Triggers back on, and every rollup recomputed from the tables (after a load with them off)."""
    await conn.execute(TRIGGERS_ON if how is Deferred.REPLICA else ENABLE_ROLLUP_TRIGGERS)
    await conn.execute(ANALYZE_SEEDED)
    await conn.execute(REBUILD_MEMORY)
    await conn.execute(REBUILD_ROLLUPS)


def _copied(status: str) -> int:
    """The row count of a "COPY n" command tag."""
    return int(status.rsplit(" ", 1)[-1])


async def copy_orders(conn: asyncpg.Connection, records: Iterable[OrderRow]) -> int:
    """Bulk-load orders; return how many rows were copied."""
    return _copied(await conn.copy_records_to_table("orders", records=records, columns=ORDER_COLUMNS))


async def copy_payment_failures(conn: asyncpg.Connection, records: Iterable[PaymentFailureRow]) -> int:
    """Bulk-load failed payment attempts (their orders must be loaded first: order_id is a foreign key)."""
    return _copied(await conn.copy_records_to_table(
        "payment_failures", records=records, columns=PAYMENT_FAILURE_COLUMNS))


async def copy_checkout_sessions(conn: asyncpg.Connection, records: Iterable[CheckoutSessionRow]) -> int:
    """Bulk-load checkout sessions; return how many rows were copied."""
    return _copied(await conn.copy_records_to_table(
        "checkout_sessions", records=records, columns=CHECKOUT_SESSION_COLUMNS))


async def copy_webhook_logs(conn: asyncpg.Connection, records: Iterable[WebhookLogRow]) -> int:
    """Bulk-load webhook log rows, payload as JSON text (see the note on codecs above)."""
    return _copied(await conn.copy_records_to_table(
        "webhook_logs", records=records, columns=WEBHOOK_LOG_COLUMNS))
