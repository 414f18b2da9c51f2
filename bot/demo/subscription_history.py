"""The demo store's last 30 days of subscriptions: ledger snapshots and states, as the intake would have left them.

Subscribers who started before the window (their MRR is the window's opening MRR), new ones inside it, renewals,
upgrades and downgrades, cancellations scheduled, churn and a few trials — deterministic for one seed."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import asyncpg

from bot.demo.subscriptions import PLANS, SUB_CURRENCIES
from bot.subscriptions.mrr import Item, counted_mrr
from queries import subscriptions as subscriptions_q
from queries.subscriptions import Snapshot, StateRow

EXISTING: Final = 30  # paying before the window opened
NEW: Final = 14  # joined inside it
TRIALS: Final = 3
MONTH: Final = dt.timedelta(days=30)
RANK: Final = {"created": 0, "updated": 1, "deleted": 2}
CHUNK: Final = 5000  # rows per statement


@dataclass(frozen=True, slots=True)
class Step:
    """One change of one subscription."""

    at: dt.datetime
    kind: str  # created | updated | deleted
    plan: int
    quantity: int
    status: str
    cancel: bool = False


def mrr_of(plan: int, quantity: int, currency: str, status: str, at: dt.datetime) -> int:
    """A demo plan's counted MRR."""
    name, prices, interval, _ = PLANS[plan]
    item = Item(price_id=f"price_demo_{plan}", name=name, unit_amount=Fraction(prices[currency]), interval=interval,
                quantity=quantity)
    return counted_mrr(status, [item], at=at)


def _steps(rng: random.Random, start: dt.datetime, now: dt.datetime, *, trial: bool) -> list[Step]:
    plan = rng.choices(range(len(PLANS)), weights=(60, 25, 15))[0]
    qty = rng.randint(*PLANS[plan][3])
    steps = [Step(start, "created", plan, qty, "trialing" if trial else "active")]
    window = max(start, now - MONTH)
    t = start + MONTH
    while PLANS[plan][2] == "month" and t < now and not trial:  # renewals: the period moves, MRR stays
        if t >= window:
            steps.append(Step(t, "updated", plan, qty, "active"))
        t += MONTH
    roll = rng.random()
    when = window + (now - window) * rng.uniform(0.1, 0.95)
    if trial or when <= start:
        return steps
    if roll < 0.2:  # a plan change
        plan = (plan + rng.choice((1, 2))) % len(PLANS)
        steps.append(Step(when, "updated", plan, rng.randint(*PLANS[plan][3]), "active"))
    elif roll < 0.32:
        steps.append(Step(when, "updated", plan, qty, "active", cancel=True))
    elif roll < 0.45:
        steps.append(Step(when, "deleted", plan, qty, "canceled", cancel=True))
    return sorted(steps, key=lambda s: (s.at, RANK[s.kind]))


def history(*, now: dt.datetime, seed: int, token: str,
            subscribers: int = EXISTING + NEW + TRIALS) -> tuple[list[Snapshot], list[StateRow]]:
    """Snapshots and final states of `subscribers` synthetic subscriptions over the 30 days before `now` (the demo's
    47: 30 paying before the window, 14 new in it, 3 trials; `salespulse seed --subscriptions N` in proportion)."""
    rng = random.Random(seed)
    existing = round(subscribers * EXISTING / (EXISTING + NEW + TRIALS))
    paying = existing + round(subscribers * NEW / (EXISTING + NEW + TRIALS))
    snapshots: list[Snapshot] = []
    states: list[StateRow] = []
    for n in range(subscribers):
        if n < existing:
            start = now - dt.timedelta(days=rng.uniform(35, 200))
        else:
            start = now - dt.timedelta(days=rng.uniform(0.5, 29.5 if n < paying else 10))
        currency = rng.choices(list(SUB_CURRENCIES), weights=list(SUB_CURRENCIES.values()))[0]
        sub_id = f"sub_demo{token}{n:04d}"
        steps = _steps(rng, start, now, trial=n >= paying)
        for i, s in enumerate(steps):
            snapshots.append(Snapshot(f"evt_demo{token}sub{n:04d}{i:03d}", sub_id, s.at, RANK[s.kind], s.status,
                                      mrr_of(s.plan, s.quantity, currency, s.status, s.at), currency,
                                      PLANS[s.plan][0]))
        last = steps[-1]
        period_end = start + MONTH * (1 + int((now - start) / MONTH))
        states.append(StateRow(
            sub_id, f"cus_demo{token}{n:04d}", last.status, snapshots[-1].mrr, currency, PLANS[last.plan][0],
            last.cancel, period_end if last.cancel and last.kind != "deleted" else None, period_end, start,
            last.at if last.kind == "deleted" else None, last.at if last.kind == "deleted" else None, False,
            snapshots[-1].event_id, last.at, RANK[last.kind]))
    return snapshots, states


async def seed_subscriptions(conn: asyncpg.Connection, *, subscribers: int, now: dt.datetime, seed: int,
                             token: str) -> int:
    """`salespulse seed --subscriptions N`: store N synthetic subscriptions' ledger and states; the snapshots."""
    snapshots, states = history(now=now, seed=seed, token=token, subscribers=subscribers)
    for i in range(0, len(states), CHUNK):
        await subscriptions_q.upsert_states(conn, states[i:i + CHUNK])
    for i in range(0, len(snapshots), CHUNK):
        await subscriptions_q.insert_snapshots(conn, snapshots[i:i + CHUNK])
    return len(snapshots)
