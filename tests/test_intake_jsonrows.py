"""The intake sends its rows as JSON (queries/rows.py json_rows()), in one statement for a batch of new sales
(queries/intake_new.py) or one per table (queries/intake.py): awkward values must come back exactly as sent by
either, and odd ones be refused as a DataError of the statement."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg
import pytest

from bot.intake.result import PAYLOAD_ERRORS
from queries import intake as q
from queries import intake_log, intake_new, rows

# Text JSON must escape, and text it need not: quotes, backslashes, control characters, non-ASCII, emoji (a
# surrogate pair once escaped), a JSON-looking string, the empty string.
AWKWARD = ['say "hi" \\ back\\slash', "line\nbreak\r\ttab\x01\x1f\x7f", "é 中文 \u2028\u2029 \ufeff",
           "😀👩‍💻 𝄞", '{"not": "json"}', "", "null", "'; DROP TABLE orders; --"]
BIG, SMALL = 2**63 - 1, -(2**63)
AT = dt.datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=dt.UTC)
ODD_ZONE = dt.timezone(dt.timedelta(hours=-3, minutes=-25, seconds=-7))  # an LMT-style offset, with seconds
FAR = dt.datetime(9000, 6, 15, 12, 30, 45, 123457, tzinfo=dt.UTC)  # 2.2e17 µs, past float8's exact integers
METADATA = {"productName": AWKWARD[0], "ü\n": AWKWARD[3], "n": 2**70, "f": 0.1, "nested": {"l": [None, True, ""]}}


def _orders() -> list[q.OrderRow]:
    orders = [q.OrderRow(id=f"ord_{n}_{text}", payment_status="completed", created_at=AT - dt.timedelta(microseconds=n),
                         status_at=AT.astimezone(ODD_ZONE), amount_total=[BIG, SMALL, 0, None][n % 4],
                         amount_refunded=[SMALL, BIG, 1][n % 3], currency=text or None, customer_email=text,
                         customer_name=f"{text} name", product_name=None if n % 2 else f"{text} product",
                         livemode=bool(n % 2), metadata={**METADATA, "i": n, text: text}, is_new=True,
                         refunded_at=None if n % 3 else dt.datetime(1901, 12, 13, 20, 45, 52, 1, tzinfo=ODD_ZONE))
              for n, text in enumerate(AWKWARD)]
    orders[0].metadata = {}
    return orders


def _checkouts() -> list[q.CheckoutRow]:
    return [q.CheckoutRow(id=f"cs_{n}_{text}", status="complete", amount_total=[BIG, None, SMALL][n % 3],
                          currency=text, customer_email=None if n % 2 else f"{text}@", metadata={text: [text, n]},
                          created_at=AT, completed_at=[None, AT.astimezone(ODD_ZONE), FAR][n % 3],
                          status_at=AT + dt.timedelta(microseconds=n)) for n, text in enumerate(AWKWARD)]


def _messages() -> list[q.QueuedMessage]:
    return [q.QueuedMessage(n, f"sale:{n}:{text}", "sales", text or "sale", {"text": text, "blocks": [METADATA]},
                            amount=[BIG, SMALL, None][n % 3], currency=None if n % 2 else text,
                            delay=[0.0, 0.1, 1e-6, 86400.5][n % 4]) for n, text in enumerate(AWKWARD)]


# Every column either path writes (metadata/payload also as jsonb's own text: stored values, not just equal ones).
STORED = {
    "orders": f"SELECT {', '.join(q.ORDER_COLUMNS)}, metadata::text AS raw FROM orders ORDER BY id",
    "payment_refs": "SELECT ref, order_id FROM payment_refs ORDER BY ref",
    "checkout_sessions": "SELECT id, status, amount_total, currency, customer_email, metadata, metadata::text AS raw,"
                         " created_at, completed_at, status_at FROM checkout_sessions ORDER BY id",
    "outbox": "SELECT dedupe_key, channel, kind, payload, payload::text AS raw, amount, currency,"
              " available_at - now() AS delay FROM outbox ORDER BY dedupe_key",
}


async def _stored(db: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    return {table: [dict(r) for r in await db.fetch(sql)] for table, sql in STORED.items()}


async def _written(db: asyncpg.Connection, one_statement: bool) -> dict[str, list[dict[str, Any]]]:
    """What one path stores (read within its savepoint, which is then undone, so now() is the statement's)."""
    orders, checkouts, messages = _orders(), _checkouts(), _messages()
    pairs = [(f"pi_{o.id}", o.id) for o in orders] + [(f"cs_{o.id}", o.id) for o in orders]
    tx = db.transaction()
    await tx.start()
    try:
        if one_statement:
            queued = await intake_new.write_new(db, orders, pairs, checkouts, messages)
        else:
            await q.write_orders(db, orders)
            await q.add_refs(db, pairs)
            await q.upsert_checkouts(db, checkouts)
            queued = await q.enqueue(db, messages)
        assert queued == {m.dedupe_key for m in messages}
        return await _stored(db)
    finally:
        await tx.rollback()


async def test_awkward_values_come_back_as_sent_by_either_path(db: asyncpg.Connection) -> None:
    """NULLs, bigint extremes, escapes, emoji, odd offsets and microseconds: every value back as it was sent, and
    the one statement and the statements per table store the same rows."""
    got, expected = await _written(db, one_statement=True), await _written(db, one_statement=False)
    for table in STORED:
        assert got[table] == expected[table], table
    orders = {o["id"]: o for o in got["orders"]}
    for o in _orders():
        assert {name: orders[o.id][name] for name in q.ORDER_COLUMNS} == {
            name: getattr(o, name) for name in q.ORDER_COLUMNS}
    assert {r["amount_total"] for r in got["orders"]} == {BIG, SMALL, 0, None}
    checkouts = {c["id"]: c for c in got["checkout_sessions"]}
    for c in _checkouts():
        assert {name: checkouts[c.id][name] for name in q.CHECKOUT_COLUMNS} == {
            name: getattr(c, name) for name in q.CHECKOUT_COLUMNS}
    outbox = {m["dedupe_key"]: m for m in got["outbox"]}
    for m in _messages():
        stored = outbox[m.dedupe_key]
        assert (stored["channel"], stored["kind"], stored["payload"], stored["amount"], stored["currency"],
                stored["delay"].total_seconds()) == (m.channel, m.kind, m.payload, m.amount, m.currency, m.delay)


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


async def test_failures_and_disputes_come_back_as_sent(db: asyncpg.Connection) -> None:
    """The rare tables' rows (RowShape.json()): NULLs, bigint extremes, awkward text, odd offsets, microseconds."""
    failures = [(f"evt_{n}_{text}", None, [BIG, SMALL, None][n % 3], text or None, None if n % 2 else text,
                 f"{text} declined", AT.astimezone(ODD_ZONE) - dt.timedelta(microseconds=n), None if n % 3 else text,
                 text or None)
                for n, text in enumerate(AWKWARD)]
    disputes = [(f"dp_{n}_{text}", None, f"ch_{text}", [SMALL, BIG, 0][n % 3], text, None if n % 2 else text,
                 "needs_response", FAR - dt.timedelta(microseconds=n), FAR - dt.timedelta(microseconds=n))
                for n, text in enumerate(AWKWARD)]
    assert await q.insert_failures(db, failures) == {f[0] for f in failures}
    await q.upsert_disputes(db, disputes)
    await q.upsert_disputes(db, disputes[:1])  # a dispute told again is the same row
    got = await db.fetch("SELECT event_id, order_id, amount, currency, customer_email, reason, created_at, charge_id,"
                         " event_type FROM payment_failures ORDER BY event_id")
    assert sorted(map(tuple, got), key=_first) == sorted(failures, key=_first)
    got = await db.fetch("SELECT id, order_id, charge_id, amount, currency, reason, status, created_at, status_at"
                         " FROM disputes ORDER BY id")
    assert sorted(map(tuple, got), key=_first) == sorted(disputes, key=_first)


async def test_log_and_lock_stores_each_field_as_sent(db: asyncpg.Connection) -> None:
    """webhook_logs rows through the JSON parameter: text, NULLs, booleans and times come back exactly."""
    rows = [intake_log.LogRow("stripe", f"evt_{n}_{text}", text, "error" if n % 2 else "processed",
                              json.dumps({"id": n, "text": text}, ensure_ascii=n % 2 == 0), bool(n % 2),
                              None if n % 3 == 0 else AT.astimezone(ODD_ZONE) - dt.timedelta(microseconds=n),
                              "webhook", None if n % 2 == 0 else text) for n, text in enumerate(AWKWARD)]
    new = await intake_new.log_and_lock(db, rows + rows[:1], ["pi_1", 'ref "2"', "pi_1", "é"])
    assert new == {(r.source, r.event_id) for r in rows}
    stored = await db.fetch("SELECT source, event_id, event_type, status, payload,"
                            " payload::text = $1::text::jsonb::text, livemode, event_created_at, via, last_error"
                            " FROM webhook_logs ORDER BY id", rows[1].body)
    assert [tuple(r) for r in stored] == [
        (r.source, r.event_id, r.event_type, r.status, json.loads(r.body), r is rows[1], r.livemode,
         r.event_created_at, r.via, r.last_error) for r in rows]
    assert await intake_new.log_and_lock(db, rows, []) == set(), "a second delivery is not new"


@pytest.mark.parametrize("odd", ["lone surrogate in metadata", "lone surrogate in text", "NUL in text",
                                 "amount past bigint", "amount below bigint"])
async def test_values_postgresql_refuses_are_a_data_error_of_the_statement(db: asyncpg.Connection,
                                                                            odd: str) -> None:
    """What the batch splits on: a refused value raises an asyncpg.DataError (one of PAYLOAD_ERRORS)."""
    orders, checkouts, messages = _orders()[:2], _checkouts()[:1], _messages()[:1]
    o = orders[1]
    if odd == "lone surrogate in metadata":
        o.metadata = {"productName": "\ud800"}
    elif odd == "lone surrogate in text":
        o.customer_name = "a\udfffb"
    elif odd == "NUL in text":
        o.product_name = "a\x00b"
    else:
        o.amount_total = BIG + 1 if odd == "amount past bigint" else SMALL - 1
    with pytest.raises(asyncpg.DataError) as refused:
        async with db.transaction():
            await intake_new.write_new(db, orders, [("pi_x", o.id)], checkouts, messages)
    assert isinstance(refused.value, PAYLOAD_ERRORS)


async def test_a_body_jsonb_refuses_is_a_data_error_of_log_and_lock(db: asyncpg.Connection) -> None:
    """A lone surrogate escape in the body: valid JSON text, refused by jsonb, so the batch splits and keeps it."""
    row = intake_log.LogRow("stripe", "evt_bad", "checkout.session.completed", "processed", '{"a": "\\ud800"}',
                            False, AT, "webhook")
    with pytest.raises(asyncpg.DataError) as refused:
        async with db.transaction():
            await intake_new.log_and_lock(db, [row], ["pi_1"])
    assert isinstance(refused.value, PAYLOAD_ERRORS)


def test_json_rows_sends_only_aware_datetimes() -> None:
    """A naive time has no instant to send (PostgreSQL would read it in the session's zone): refused at once."""
    assert rows.json_rows([(AT.astimezone(ODD_ZONE), None, True, BIG, 0.1, "é")]) == (
        '[["2026-03-28T22:34:52.999999-03:25:07",null,true,9223372036854775807,0.1,"\\u00e9"]]')
    with pytest.raises(TypeError):
        rows.json_rows([(dt.datetime(2026, 1, 1),)])
    with pytest.raises(ValueError):
        rows.json_rows([(float("nan"),)])
    # The intake's own rows carry times as micros(): the same refusal, before anything is sent.
    naive = q.OrderRow(id="ord_naive", payment_status="completed", created_at=dt.datetime(2026, 1, 1), status_at=AT)
    with pytest.raises(TypeError):
        q.order_values(naive)
