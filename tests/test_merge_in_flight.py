"""A basil payment's two sale pings merged into one while a delivery worker may be sending one of them (its attempt
recorded, alone or in a burst): the ping that may be in Slack stays (keyed by the surviving order) and the other
goes, so the payment is announced once (queries/intake_pings.py merge_pings)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.intake.batch import Submission, ingest_batch
from bot.stripe.parse import parse_event
from tests.test_subscriptions import story_event

TZ = ZoneInfo("Europe/Berlin")
EVENTS = ("payment_intent.succeeded", "invoice.paid", "invoice_payment.paid")


def _sub(name: str) -> list[Submission]:
    e: dict[str, Any] = story_event("basil", f"subscription_renewal/{name}")
    return [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e))]


async def _sale_pings(db: asyncpg.Connection) -> list[int]:
    return [r["id"] for r in await db.fetch("SELECT id FROM outbox WHERE kind = 'sale' ORDER BY id")]


@pytest.mark.parametrize("in_flight", [0, 1], ids=["the PaymentIntent's ping", "the invoice's ping"])
@pytest.mark.parametrize("how", ["its own attempt", "a burst's attempt"])
async def test_the_ping_that_may_be_in_slack_is_the_one_kept(db: asyncpg.Connection, in_flight: int,
                                                             how: str) -> None:
    now = dt.datetime.now(dt.UTC)
    # An earlier sale, waiting with them: a burst's attempt record is keyed by the first sale it covers.
    other = await db.fetchval("INSERT INTO outbox (dedupe_key, channel, kind, payload) VALUES"
                              " ('sale:other', 'sales', 'sale', '{}') RETURNING id")
    for name in EVENTS[:2]:  # neither names the other: two orders, two pings
        await ingest_batch(db, _sub(name), tz=TZ, now=now)
    pings = [p for p in await _sale_pings(db) if p != other]
    assert len(pings) == 2
    sending = pings[in_flight]
    if how == "its own attempt":  # what the worker commits just before its call to Slack
        await db.execute("INSERT INTO delivery_attempts (outbox_id, channel) VALUES ($1, 'sales')", sending)
    else:  # a burst covering the earlier sale and this ping, its answer not come yet
        await db.execute("INSERT INTO delivery_attempts (outbox_id, channel, covers) VALUES ($1, 'sales', $2)",
                         other, [other, sending])
    await ingest_batch(db, _sub(EVENTS[2]), tz=TZ, now=now)  # invoice_payment.paid: one payment after all
    left = [p for p in await _sale_pings(db) if p in pings]
    assert left == [sending], (pings, left)

