"""Test helper for the daily reports: seeded store history (orders in several currencies, refunds, disputes,
failures, alerts) inserted as rows, and the independent Python computation the reports must agree with."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

CURRENCIES = (("USD", 60, (500, 25_000)), ("EUR", 25, (300, 18_000)), ("JPY", 15, (300, 30_000)))
PRODUCTS = ("Course", "E-book", "Coaching call", "Templates", None)


@dataclass(frozen=True)
class Order:
    """One seeded row of `orders`."""

    id: str
    status: str
    amount: int
    currency: str
    email: str
    product: str | None
    created_at: dt.datetime
    refunded: int = 0
    refunded_at: dt.datetime | None = None


@dataclass
class History:
    """Everything seeded, kept for the independent computation."""

    orders: list[Order] = field(default_factory=list)
    disputes: list[tuple[str, int, dt.datetime]] = field(default_factory=list)  # currency, amount, at
    failures: list[dt.datetime] = field(default_factory=list)


def at(tz: ZoneInfo, *args: int) -> dt.datetime:
    """A local wall-clock time as a UTC instant (fold=0, as the reports read it)."""
    return dt.datetime(*args, tzinfo=tz).astimezone(dt.UTC)  # type: ignore[misc]  # *args of datetime's int fields


def generate(*, tz: ZoneInfo, first: dt.date, last: dt.date, seed: int,
             boundaries: Iterable[dt.datetime] = (), per_day: int = 40) -> History:
    """Random orders (completed, refunded, partly refunded, failed, pending), disputes and failures per
    local day in [first, last], plus completed orders exactly at each of `boundaries` and 1 µs before."""
    rng = random.Random(seed)
    history = History()
    n = 0

    def order(created: dt.datetime, status: str | None = None) -> None:
        nonlocal n
        n += 1
        currency = rng.choices([c for c, _, _ in CURRENCIES], [w for _, w, _ in CURRENCIES])[0]
        low, high = next(r for c, _, r in CURRENCIES if c == currency)
        amount = rng.randint(low, high)
        status = status or rng.choices(["completed", "refunded", "failed", "pending"], [85, 5, 5, 5])[0]
        refunded, refunded_at = 0, None
        if status == "refunded":
            refunded, refunded_at = amount, created + dt.timedelta(hours=rng.randint(1, 30))
        elif status == "completed" and rng.random() < 0.05:
            refunded, refunded_at = amount // 3, created + dt.timedelta(hours=rng.randint(1, 30))
        history.orders.append(Order(f"pi_seed_{n}", status, amount, currency, f"buyer{rng.randint(1, 25)}@x.test",
                                    rng.choice(PRODUCTS), created, refunded, refunded_at))

    day = first
    while day <= last:
        start = at(tz, day.year, day.month, day.day)
        nxt = day + dt.timedelta(days=1)
        length = int((at(tz, nxt.year, nxt.month, nxt.day) - start).total_seconds())
        for _ in range(per_day):
            order(start + dt.timedelta(seconds=rng.randrange(length)))
        for _ in range(rng.randint(0, 2)):
            currency = rng.choice(["USD", "EUR"])
            history.disputes.append((currency, rng.randint(1000, 9000),
                                     start + dt.timedelta(seconds=rng.randrange(length))))
        history.failures += [start + dt.timedelta(seconds=rng.randrange(length)) for _ in range(rng.randint(0, 4))]
        day = nxt
    for instant in boundaries:
        order(instant, "completed")
        order(instant - dt.timedelta(microseconds=1), "completed")
    return history


async def insert(conn: asyncpg.Connection | asyncpg.Pool, history: History) -> None:
    """Write the history as rows. Empty lists are skipped: asyncpg 0.32's executemany() of no rows leaves the
    connection's implicit transaction open, and the pooled connection's next BEGIN ISOLATION LEVEL … then fails."""
    statements = [
        ("INSERT INTO orders (id, payment_status, amount_total, amount_refunded, currency, customer_email,"
         " product_name, created_at, refunded_at, status_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$8)",
         [(o.id, o.status, o.amount, o.refunded, o.currency, o.email, o.product, o.created_at, o.refunded_at)
          for o in history.orders]),
        ("INSERT INTO disputes (id, amount, currency, created_at) VALUES ($1,$2,$3,$4)",
         [(f"dp_{i}", a, c, t) for i, (c, a, t) in enumerate(history.disputes)]),
        ("INSERT INTO payment_failures (event_id, reason, created_at) VALUES ($1,'declined',$2)",
         [(f"evt_fail_{i}", t) for i, t in enumerate(history.failures)]),
    ]
    for sql, rows in statements:
        if rows:
            await conn.executemany(sql, rows)


async def insert_alert(conn: asyncpg.Connection | asyncpg.Pool, *, severity: str, title: str,
                       started_at: dt.datetime, resolved_at: dt.datetime | None = None,
                       notified: bool | dt.datetime = True) -> None:
    """One row of the alerts table (owned by the alerts feature; the reports only read it); `notified` when it was
    posted (True: as it started, False: never)."""
    await conn.execute(
        "INSERT INTO alerts (fingerprint, rule, family, severity, title, summary, started_at, last_seen_at,"
        " resolved_at, notified_at) VALUES ($1, $2, $2, $3, $4, $5, $6, $6, $7, $8)",
        f"{title}|{started_at.isoformat()}", title.lower().replace(" ", "_"), severity, title,
        f"{title}: details", started_at, resolved_at,
        notified if isinstance(notified, dt.datetime) else started_at if notified else None)


def completed_totals(history: History, start: dt.datetime, end: dt.datetime) -> dict[str, tuple[int, int]]:
    """Completed orders and revenue per currency with created_at in [start, end)."""
    out: dict[str, tuple[int, int]] = {}
    for o in history.orders:
        if o.status == "completed" and start <= o.created_at < end:
            count, revenue = out.get(o.currency, (0, 0))
            out[o.currency] = (count + 1, revenue + o.amount)
    return out


def as_dict(totals: Iterable[Any]) -> dict[str, tuple[int, int]]:
    """CurrencyTotal rows as {currency: (orders, revenue)}."""
    return {t.currency: (t.orders, t.revenue) for t in totals}


def hourly(history: History, start: dt.datetime, end: dt.datetime, currency: str, tz: ZoneInfo) -> list[int]:
    """Revenue of completed orders in one currency per local hour of day."""
    hours = [0] * 24
    for o in history.orders:
        if o.status == "completed" and o.currency == currency and start <= o.created_at < end:
            hours[o.created_at.astimezone(tz).hour] += o.amount
    return hours
