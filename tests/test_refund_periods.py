"""Refunds across periods: "Refunds made" (/sales, the evening report) counts each refund at its own time, of any
order, and a refund that failed or was canceled when it did (its money came back: -1 and its amount), whatever the
order of arrival; refund_steps and the rollups stay what a rebuild computes, and the upgrade (migration 0042) moves
the refunds stored before onto their steps (found by a review of /sales)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bot.blocks.reports import report_message
from bot.db import bundled_migrations, migrate
from bot.intake.refunds import refund_steps, settle_refunded
from bot.periods import local_midnight
from bot.reports.figures import evening
from bot.reports.schedule import ReportKind, Slot
from queries import sales, sales_raw
from queries.instants import micros
from queries.intake import OrderRow
from queries.sales import CurrencyTotal
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.test_intake_order_fixes import arrive
from tests.test_intake_versions import reset
from tests.test_refund_voids import AMOUNT, VERSIONS, charge_refunded, failure_events, refund_object, sale

DAY1 = dt.datetime(2026, 6, 10, 10, 0, tzinfo=dt.UTC)
DAY2 = DAY1 + dt.timedelta(days=1)
NOW = DAY2 + dt.timedelta(hours=2)
MIDNIGHT = dt.datetime(2026, 6, 10, tzinfo=dt.UTC)
DAYS = ((MIDNIGHT, MIDNIGHT + dt.timedelta(days=1)), (MIDNIGHT + dt.timedelta(days=1), MIDNIGHT + dt.timedelta(days=2)),
        (MIDNIGHT, MIDNIGHT + dt.timedelta(days=2)))  # day 1, day 2, both
STEPS = "SELECT order_id, at, amount, refunds, currency FROM refund_steps ORDER BY 1, 2"
ROLLUPS = ("SELECT level, bucket, currency, refunds, refunded FROM sales_rollups WHERE refunds <> 0 OR refunded <> 0"
           " ORDER BY 1, 2, 3")
PREVIOUS = "0042"  # the store as the releases before this change left it


def text_of(body: dict[str, Any]) -> str:
    return json.dumps(body.get("blocks", []), ensure_ascii=False) + body.get("text", "")


def refunds_line(body: dict[str, Any]) -> str:
    """/sales' "Refunds made" value."""
    found = re.search(r"Refunds made:\*\\n([^\"]*)", text_of(body))
    assert found is not None, body
    return found.group(1)


def usd(count: int, amount: int) -> list[CurrencyTotal]:
    return [CurrencyTotal("USD", count, amount)]


async def by_day(db: asyncpg.Connection | asyncpg.Pool) -> list[list[CurrencyTotal]]:
    """sales.refunds of day 1, day 2 and both, each equal to the plain query's."""
    got = []
    for start, end in DAYS:
        figure = await sales.refunds(db, start=start, end=end)
        assert figure == await sales_raw.refunds(db, start=start, end=end), (start, end)
        got.append(figure)
    return got


async def kept_as_rebuilt(db: asyncpg.Connection | asyncpg.Pool) -> tuple[str, str]:
    """refund_steps and the rollups' refunds as the triggers kept them, equal to a rebuild's."""
    kept = (str(await db.fetch(STEPS)), str(await db.fetch(ROLLUPS)))
    await db.execute("SELECT sales_rollups_rebuild()")
    assert kept == (str(await db.fetch(STEPS)), str(await db.fetch(ROLLUPS)))
    return kept


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot two hours into day 2."""
    async with start_bot(dsn, fake_slack, clock=lambda: NOW) as running:
        yield running


def sale_on_day1(version: str) -> dict[str, Any]:
    evt = sale(version)
    evt["created"] = int(DAY1.timestamp()) - 3600
    return evt


async def evening_refunds(bot: Bot, day: dt.date) -> str:
    """The "Refunds made" line of the evening report of `day` (the whole local day), its blocks valid."""
    tz = bot.deps.settings.tz
    slot = Slot(ReportKind.EVENING, day, local_midnight(day + dt.timedelta(days=1), tz) - dt.timedelta(minutes=1))
    async with bot.deps.pool.acquire() as conn:
        msg = report_message(await evening(conn, slot, settings=bot.deps.settings, now=NOW), tz=tz)
    assert_valid_message(msg.as_payload())
    payload = json.dumps(msg.as_payload(), ensure_ascii=False)
    found = re.search(r"Refunds made[^\n]*?(no refunds|-?\d+ refunds? · [^\"\\]*)", payload)
    assert found is not None, msg.as_payload()
    return found.group(1)


async def test_a_second_partial_refund_leaves_the_first_in_its_own_day(store: Bot) -> None:
    """$10 refunded on day 1, $5 more on day 2: day 1 gave back $10 — before the second refund and after it — and
    day 2 $5, not $0 and $15; /sales and the evening report alike."""
    await arrive(store, [sale_on_day1("basil"), charge_refunded("basil", 1000, at=int(DAY1.timestamp()),
                                                               event_id="evt_ref1")])
    assert refunds_line(await store.command("/sales", "2026-06-10")) == "1 · $10.00"
    await arrive(store, [charge_refunded("basil", 1500, at=int(DAY2.timestamp()), event_id="evt_ref2")])
    assert AMOUNT == 4900
    assert [refunds_line(await store.command("/sales", arg)) for arg in ("2026-06-10", "today")] == [
        "1 · $10.00", "1 · $5.00"]
    assert [await evening_refunds(store, d) for d in (DAY1.date(), DAY2.date())] == [
        "1 refund · $10.00", "1 refund · $5.00"]


async def every_arrival(bot: Bot, events: dict[str, dict[str, Any]]) -> tuple[list[list[CurrencyTotal]], Any]:
    """Each order of arrival from an empty store: the same figures by day and the same steps and rollups, which a
    rebuild leaves as they are."""
    first = None
    for arrival in itertools.permutations(events):
        await reset(bot)
        await bot.deps.pool.execute("TRUNCATE sales_rollups")  # reset() leaves the coarse rollups
        await arrive(bot, [events[name] for name in arrival])
        got = (await by_day(bot.deps.pool), await kept_as_rebuilt(bot.deps.pool))
        assert first is None or got == first, (arrival, got, first)
        first = got
    assert first is not None
    return first


@pytest.mark.parametrize("version", VERSIONS)
async def test_two_partial_refunds_in_every_order_of_arrival(store: Bot, version: str) -> None:
    events = {"sale": sale_on_day1(version),
              "first": charge_refunded(version, 1000, at=int(DAY1.timestamp()), event_id="evt_ref1"),
              "second": charge_refunded(version, 1500, at=int(DAY2.timestamp()), event_id="evt_ref2")}
    figures, _ = await every_arrival(store, events)
    assert figures == [usd(1, 1000), usd(1, 500), usd(2, 1500)]


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_refund_that_fails_the_next_day_comes_off_that_day(store: Bot, version: str) -> None:
    """$10 refunded on day 1 fails on day 2: day 1 still gave back $10 (the past does not change), day 2 shows the
    money back (a row of its own, -1 and -$10.00, which /sales words as money back, not as a count), and the two days
    together the refund made and the money back, never netted to nothing — in every order of arrival and API
    version."""
    refund = refund_object("re_day1", 1000, created=int(DAY1.timestamp()), status="failed")
    events = {"sale": sale_on_day1(version),
              "refunded": charge_refunded(version, 1000, at=int(DAY1.timestamp()), event_id="evt_ref1"),
              **{e["type"]: e for e in failure_events(version, refund, at=int(DAY2.timestamp()))}}
    figures, _ = await every_arrival(store, events)
    assert figures == [usd(1, 1000), usd(-1, -1000), usd(1, 1000) + usd(-1, -1000)]
    assert await store.deps.pool.fetchval("SELECT amount_refunded FROM orders") == 0
    assert [refunds_line(await store.command("/sales", arg)) for arg in ("2026-06-10", "today")] == [
        "1 · $10.00", "none · $10.00 back (1 failed or canceled)"]


def reference_steps(ledger: dict[str, Any], status: str) -> list[tuple[int, int, int]]:
    """The steps from bot/intake/refunds.py's derivation itself: the facts taken one at a time (by time, at one time
    the voids before the charge.refunded facts, each kind by amount, then id), the amount refunded the facts taken so
    far derive, less the one before."""
    charges, voids = ledger.get("charges", []), ledger.get("voids", {})
    facts = sorted([(gone, 0, amount, key) for key, (amount, _, gone) in voids.items()]
                   + [(at, 1, amount, "") for amount, at in charges])
    steps, before = [], 0
    for n, (t, *_) in enumerate(facts, 1):
        taken = facts[:n]
        order = OrderRow(id="o", payment_status=status, status_at=NOW, created_at=NOW, amount_total=AMOUNT,
                         refund_ledger={"charges": [[a, at] for at, kind, a, _ in taken if kind == 1],
                                        "voids": {k: voids[k] for _, kind, _, k in taken if kind == 0}})
        settle_refunded(order)
        if order.amount_refunded != before:
            steps.append((t, order.amount_refunded - before, 1 if order.amount_refunded > before else -1))
        before = order.amount_refunded
    return steps


def random_ledger(rng: random.Random) -> dict[str, Any]:
    """Charges and voids at a few shared times (ties included), refunds created before, at or after them."""
    times = [1_781_000_000_000_000 + rng.randrange(6) * 1_000_000 for _ in range(8)]
    charges = sorted({(rng.randrange(1, 6) * 500, rng.choice(times)) for _ in range(rng.randrange(1, 5))},
                     key=lambda c: (c[1], c[0]))
    voids = {}
    for i in range(rng.randrange(4)):
        created = rng.choice([0, *times])
        voids[f"re_{i}"] = [rng.randrange(1, 5) * 500, created, max(created, rng.choice(times))]
    return {"charges": [list(c) for c in charges], **({"voids": voids} if voids else {})}


async def test_the_database_steps_are_the_intakes_derivation(db: asyncpg.Connection) -> None:
    """refund_steps_of() (migration 0051) against bot/intake/refunds.py over random ledgers: the same steps, adding up
    to the amount refunded; a placeholder has none, and an order without a ledger its amount at refunded_at."""
    rng = random.Random(42)
    sql = "SELECT at, amount, refunds FROM refund_steps_of($1::text::jsonb, $2, $3, $4) ORDER BY at"
    for _ in range(400):
        ledger = random_ledger(rng)
        order = OrderRow(id="o", payment_status="completed", status_at=NOW, created_at=NOW, amount_total=AMOUNT,
                         refund_ledger=ledger)
        settle_refunded(order)
        got = [(micros(r["at"]), r["amount"], r["refunds"])
               for r in await db.fetch(sql, json.dumps(ledger), "completed", order.amount_refunded, None)]
        assert sorted(got) == sorted(reference_steps(ledger, "completed")), ledger
        assert refund_steps(ledger, "completed") == reference_steps(ledger, "completed"), ledger
        assert refund_steps(ledger, "linked") == []
        assert sum(amount for _, amount, _ in got) == order.amount_refunded, ledger
        assert await db.fetch(sql, json.dumps(ledger), "linked", 0, None) == []
    legacy = await db.fetch(sql, "{}", "refunded", 4900, DAY1)
    assert [tuple(r) for r in legacy] == [(DAY1, 4900, 1)]
    assert await db.fetch(sql, "{}", "completed", 0, None) == []


OLD_ORDER = """INSERT INTO orders (id, payment_status, amount_total, amount_refunded, currency, created_at, status_at,
                                   refunded_at, refund_ledger)
               VALUES ($1, $2, 4900, $3, 'USD', $4, $4, $5, $6::text::jsonb)"""


async def test_the_upgrade_moves_refunds_stored_before_onto_their_steps(empty_dsn: str) -> None:
    """A store from before 0042: an order refunded $10 on day 1 and $5 on day 2 (ledger), one refunded in full on day 1
    before the ledger existed, one whose $10 refund of day 1 failed on day 2, one without refunds. After the upgrade
    each refund counts on its own day, refund_steps holds them, and the rollups are what a rebuild computes."""
    us = micros
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < PREVIOUS])
        rows = [("o_two", "completed", 1500, DAY2, {"charges": [[1000, us(DAY1)], [1500, us(DAY2)]]}),
                ("o_old", "refunded", 4900, DAY1, {}),
                ("o_void", "completed", 0, None,
                 {"charges": [[1000, us(DAY1)]], "voids": {"re_1": [1000, us(DAY1), us(DAY2)]}}),
                ("o_none", "completed", 0, None, {})]
        for oid, status, refunded, at, ledger in rows:
            await conn.execute(OLD_ORDER, oid, status, refunded, DAY1 - dt.timedelta(hours=3), at, json.dumps(ledger))
        await migrate(conn)
        assert [tuple(r) for r in await conn.fetch(STEPS)] == [
            ("o_old", DAY1, 4900, 1, "USD"), ("o_two", DAY1, 1000, 1, "USD"), ("o_two", DAY2, 500, 1, "USD"),
            ("o_void", DAY1, 1000, 1, "USD"), ("o_void", DAY2, -1000, -1, "USD")]
        assert await by_day(conn) == [usd(3, 6900), usd(1, 500) + usd(-1, -1000), usd(4, 7400) + usd(-1, -1000)]
        await kept_as_rebuilt(conn)
    finally:
        await conn.close()
