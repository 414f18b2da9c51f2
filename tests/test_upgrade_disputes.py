"""The upgrade from the previous release (migrations up to 0035): a dispute it stored before its sale kept its charge
only, so after 0038 a sale naming only its PaymentIntent (a Checkout session) or invoice (a basil renewal) did not
find it. 0040 takes the PaymentIntent from the dispute's own event, which that release logged, and the dispute ends
on its order as the same dispute arriving after the upgrade does (found by an upgrade check)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg
import pytest

from bot.db import bundled_migrations, migrate
from tests.conftest import start_bot
from tests.fakes import FakeSlack
from tests.test_intake_arrival_gaps import basil_story, checkout_story
from tests.test_intake_order_fixes import arrive

PREVIOUS = "0035_subscription_invoices"  # the previous release's last migration (7a855f8)
# What that release stored for a charge.dispute.created whose charge had no order yet: no order, its charge only;
# and, as for every event, its log row with the body.
OLD_DISPUTE = """INSERT INTO disputes (id, order_id, charge_id, amount, currency, reason, status, created_at, status_at)
                 VALUES ($1, NULL, $2, $3, 'usd', 'general', 'needs_response', $4, $4)"""
OLD_LOG = """INSERT INTO webhook_logs (source, event_id, event_type, status, payload, created_at, updated_at)
             VALUES ('stripe', $1, 'charge.dispute.created', 'processed', $2::jsonb, $3, $3)"""


async def upgraded_with_an_unlinked_dispute(dsn: str, dispute: dict[str, Any]) -> None:
    """The store at 0035 with the dispute as the previous release kept it, then this release's migrations."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version <= PREVIOUS])
        obj, at = dispute["data"]["object"], dt.datetime.fromtimestamp(dispute["created"], dt.UTC)
        await conn.execute(OLD_DISPUTE, obj["id"], obj["charge"], obj["amount"], at)
        await conn.execute(OLD_LOG, dispute["id"], json.dumps(dispute), at)
        await migrate(conn)
    finally:
        await conn.close()


@pytest.mark.parametrize("story", [checkout_story, basil_story])
async def test_a_dispute_stored_unlinked_before_the_upgrade_ends_on_its_order(empty_dsn: str, story: Any) -> None:
    events = story()
    await upgraded_with_an_unlinked_dispute(empty_dsn, events["dispute"])
    slack = await FakeSlack().start()
    try:
        async with start_bot(empty_dsn, slack) as bot:
            await arrive(bot, [e for name, e in events.items() if name not in ("dispute", "intent")])
            order = await bot.deps.pool.fetchval("SELECT id FROM orders WHERE payment_status <> 'linked'")
            assert order is not None
            row = await bot.deps.pool.fetchrow("SELECT order_id, refs FROM disputes")
            assert row["order_id"] == order, dict(row)
    finally:
        await slack.stop()


async def test_a_dispute_whose_sale_came_before_the_upgrade_is_linked_by_it(empty_dsn: str) -> None:
    """The sale (naming its PaymentIntent only) was stored before the upgrade too: 0040 links the dispute."""
    events = checkout_story()
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version <= PREVIOUS])
        pi = events["dispute"]["data"]["object"]["payment_intent"]
        await conn.execute("INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
                           " VALUES ($1, 'completed', 1000, 'usd', now(), now())", pi)
        await conn.execute("INSERT INTO payment_refs (ref, order_id) VALUES ($1, $1)", pi)
    finally:
        await conn.close()
    await upgraded_with_an_unlinked_dispute(empty_dsn, events["dispute"])
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT order_id FROM disputes") == pi
    finally:
        await conn.close()
