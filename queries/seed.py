"""Binary COPY for `salespulse seed`: the column layout of each table and one typed bulk-load per table."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator, Iterable
from typing import Final, TypeAlias

import asyncpg

# Binary COPY needs a *binary* encoder for every column. The pool's jsonb codec (bot.db._init_connection)
# is text-only, and asyncpg refuses it for COPY ("no binary format encoder for type jsonb (OID 3802)").
# So these functions want a plain connection (asyncpg.connect, no custom codecs), where asyncpg's built-in
# jsonb codec takes JSON *text*: webhook_logs.payload travels as a str. orders.metadata and
# checkout_sessions.metadata are left out and get their column default '{}', as is updated_at (now()).
#
# Times travel as whole microseconds since the Unix epoch, as the intake's rows carry them (queries.instants), and
# go to binary COPY through `micros_times`, which shifts them to PostgreSQL's own epoch (2000-01-01): asyncpg's
# datetime encoder cost 3.7 of the 5.5 s of CPU this process spent encoding each million orders, an integer a
# tenth of that.

Micros: TypeAlias = int
_PG_EPOCH: Final = 946_684_800_000_000  # 2000-01-01T00:00:00Z in microseconds since the Unix epoch

ORDER_COLUMNS: Final = (
    "id", "payment_status", "amount_total", "amount_refunded", "currency", "customer_email",
    "customer_name", "product_name", "affiliate_id", "checkout_session_id", "payment_intent_id",
    "failure_reason", "livemode", "created_at", "refunded_at", "status_at",
)
OrderRow: TypeAlias = tuple[
    str, str, int, int, str, str,
    str, str, str | None, str | None, str,
    str | None, bool, Micros, Micros | None, Micros,
]

PAYMENT_FAILURE_COLUMNS: Final = (
    "event_id", "order_id", "amount", "currency", "customer_email", "reason", "created_at",
)
PaymentFailureRow: TypeAlias = tuple[str, str, int, str, str, str, Micros]

CHECKOUT_SESSION_COLUMNS: Final = (
    "id", "status", "amount_total", "currency", "customer_email", "created_at", "completed_at", "status_at",
)
CheckoutSessionRow: TypeAlias = tuple[str, str, int, str, str | None, Micros, Micros | None, Micros]

WEBHOOK_LOG_COLUMNS: Final = (
    "source", "event_id", "event_type", "status", "last_error", "livemode", "payload",
    "event_created_at", "created_at", "updated_at",
)
WebhookLogRow: TypeAlias = tuple[str, str, str, str, str | None, bool, str, Micros, Micros, Micros]


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


# A load into empty tables goes as pg_restore's does: their plain indexes are dropped and built after the COPY (a
# sorted build, in parallel workers, instead of one insertion per row), and so are the rollup triggers that keep
# a transition table of every inserted row even while they are off. That takes ACCESS EXCLUSIVE locks, which would
# hold a running bot's every read until the seed commits ("database unavailable" for a minute at 10 M orders): so
# only while no other client is connected to the database. A load into tables that hold rows keeps both.
SEEDED_TABLES: Final = ("orders", "checkout_sessions", "payment_failures", "webhook_logs")
OTHER_CLIENTS: Final = """
SELECT EXISTS (SELECT FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend')"""
LOCK_SEEDED: Final = f"LOCK TABLE {', '.join(SEEDED_TABLES)} IN ACCESS EXCLUSIVE MODE"
ANY_SEEDED_ROWS: Final = """
SELECT EXISTS (SELECT FROM orders) OR EXISTS (SELECT FROM checkout_sessions)
    OR EXISTS (SELECT FROM payment_failures) OR EXISTS (SELECT FROM webhook_logs)"""
# (drop statement, definition) of each index that backs no constraint (a key, or a foreign key's target), and of
# each INSERT trigger with a NEW TABLE (tgtype bit 2 is INSERT).
SET_ASIDE: Final = """
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
  FROM pg_index AS i
 WHERE i.indrelid = ANY ($1::regclass[])
   AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
 UNION ALL
SELECT format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass), pg_get_triggerdef(t.oid)
  FROM pg_trigger AS t
 WHERE t.tgrelid = ANY ($1::regclass[])
   AND NOT t.tgisinternal AND t.tgnewtable IS NOT NULL AND t.tgtype & 4 <> 0"""
# Room for the index builds' sorts, shared by their parallel workers (the default is 64 MB).
BUILD_MEMORY: Final = "SET LOCAL maintenance_work_mem = '256MB'"


async def set_aside_if_empty(conn: asyncpg.Connection) -> list[str]:
    """In a transaction, if the seeded tables are empty, this role owns them and no other client is connected: drop
    their plain indexes and INSERT transition-table triggers for the rest of it; return the definitions to restore
    (else [])."""
    if await conn.fetchval(OTHER_CLIENTS):
        return []
    try:
        async with conn.transaction():  # a savepoint: rolled back, it releases the locks taken in it
            await conn.execute(LOCK_SEEDED)
            if await conn.fetchval(ANY_SEEDED_ROWS):
                raise _HoldsRows
            aside = await conn.fetch(SET_ASIDE, SEEDED_TABLES)
            for drop, _ in aside:
                await conn.execute(drop)
    except (_HoldsRows, asyncpg.InsufficientPrivilegeError):
        return []
    return [definition for _, definition in aside]


class _HoldsRows(Exception):
    """The seeded tables are not empty: roll the savepoint back."""


async def restore(conn: asyncpg.Connection, definitions: list[str]) -> None:
    """Recreate what `set_aside_if_empty` dropped, in the same transaction."""
    if definitions:
        await conn.execute(BUILD_MEMORY)
    for definition in definitions:
        await conn.execute(definition)


def _to_pg(micros: Micros) -> tuple[int]:
    return (micros - _PG_EPOCH,)


def _from_pg(value: tuple[int]) -> Micros:
    return value[0] + _PG_EPOCH


@contextlib.asynccontextmanager
async def micros_times(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """While inside: this connection sends (and reads) timestamptz as `Micros` instead of datetimes."""
    await conn.set_type_codec("timestamptz", schema="pg_catalog", encoder=_to_pg, decoder=_from_pg, format="tuple")
    try:
        yield
    finally:
        await conn.reset_type_codec("timestamptz", schema="pg_catalog")


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
