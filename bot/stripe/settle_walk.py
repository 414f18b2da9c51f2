"""Settled figures in the store currency only, when the store currency changes.

The rollups sum every order's settled amount and fee as amounts in the store currency, so only figures in it are in
the summed columns; figures read in another currency are set aside on the order (queries/settled_currency.py). The
fees job keeps it so for what it reads; when the store currency changes — STORE_CURRENCY set or changed, the
account's default currency read for the first time or changed — the orders read before are walked, newest first (so
today's and this week's figures are right first), STEP at a time: figures in another currency are set aside (the
order is "not converted", given up on with the reason), and figures set aside in what is now the store currency come
back (or, a refund or dispute having come since, the order is read again). Each step is one short transaction under
the walk's row lock: one replica steps at a time, another finding the lock taken goes on with its run, and a restart
goes on where the walk stopped. Once finished, a run costs one single-row read.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import asyncpg

from queries import settled_currency as q

log = logging.getLogger(__name__)

# Orders looked at per step: one transaction, the ones to change locked for it (~50 ms when all 1,000 change, at 1 M
# orders on two shared cores; 5,000 held them 0.25-0.6 s).
STEP = 1000
BUDGET_SECONDS = 5.0  # of walking per run of the fees job (every 10 s); the next run goes on


@dataclass(frozen=True, slots=True)
class Walked:
    """What a run of the walk did: figures set aside, brought back, orders to read again; whether it is finished."""

    aside: int = 0
    back: int = 0
    requeued: int = 0
    finished: bool = True


async def walk(pool: asyncpg.Pool, *, store: str | None, now: dt.datetime, attempts: int,
               step: int = STEP, budget: float = BUDGET_SECONDS) -> Walked:
    """Walk the orders for the store currency `store` for up to `budget` seconds, unless already done (or no store
    currency is known: then nothing is summed in one). Orders whose figures are set aside are given up on at
    `attempts` tries."""
    if store is None or await q.walked(pool, currency=store):
        return Walked()
    if await q.start(pool, currency=store, at=now):
        log.info("Stripe fees: the store currency is now %s; walking the orders read before", store)
    deadline, aside, back, requeued = time.monotonic() + budget, 0, 0, 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            taken = await q.step(conn, currency=store, limit=step, at=now, attempts=attempts)
        if taken is None:  # another replica is stepping, or the walk just finished
            return Walked(aside, back, requeued, finished=False)
        aside, back, requeued = aside + taken.aside, back + taken.back, requeued + taken.requeued
        if taken.finished or time.monotonic() >= deadline:
            break
    if aside or back or requeued or taken.finished:
        log.info("Stripe fees, walk for %s: %d order(s) set aside (settled in another currency), %d brought back, "
                 "%d to read again%s", store, aside, back, requeued, "; finished" if taken.finished else "")
    return Walked(aside, back, requeued, finished=taken.finished)
