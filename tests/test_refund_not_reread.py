"""A refund the fees job has not read yet (seconds normally; hours while Stripe refuses the key; for ever once the key
is removed): the day's figures must never count it as money coming in, and must say figures are still to come."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import asyncpg

from bot.blocks.currency import net_text
from bot.currency import store_totals
from bot.db import bundled_migrations, migrate
from bot.stripe.settle_job import SettlementJob
from queries import settlements
from tests.conftest import Bot
from tests.fake_stripe import FakeStripe
from tests.reference import stripe_fixture, wrap_event
from tests.settled_store import balance_transaction, refund_sale_2, resource, sell, totals
from tests.test_fx_refund import OLD_ORDER, assert_rollups_match_a_rebuild

pytest_plugins = ["tests.settled_store"]


def refund_sale_1(stripe: FakeStripe, *, amount: int) -> dict[str, Any]:
    """`amount` cents of sale 1's $30.00 (USD, the store's currency) refunded on Stripe's side; the charge.refunded
    event that tells the bot."""
    refund = resource("refund")
    refund.update(id="re_1", amount=amount, currency="usd", charge="ch_1", balance_transaction="txn_re_1")
    stripe.charges["ch_1"]["refunds"]["data"].append(refund)
    stripe.balance_transactions["txn_re_1"] = balance_transaction("txn_re_1", amount=-amount, fee=0, source="re_1",
                                                                  type_="refund")
    refunded = stripe_fixture("pay-rails/charge.refunded.json")
    refunded["object"].update(id="ch_1", payment_intent="pi_1", amount=3000, amount_captured=3000,
                              amount_refunded=amount, currency="usd", refunded=amount == 3000)
    return wrap_event(refunded, "charge.refunded", event_id="evt_re_1", created=int(time.time()))


async def test_full_refund_not_yet_reread_never_adds_to_net(store: Bot, stripe_api: FakeStripe) -> None:
    """A settled EUR order (settled $48.71, fee $1.71) refunded in full: until the fees job reads the refund's balance
    transaction, the day must not show a negative refund nor keep the refunded order's net while its gross is gone;
    it takes off the fee and says a figure is still to come. Once read, Stripe's own figures replace the estimate."""
    at = await sell(store, 2, 4)
    job = SettlementJob(store.deps)
    assert await job.tick() == 2
    assert (await store.stripe(refund_sale_2(stripe_api, amount=4500, settled=4871))).status == 200
    after = await totals(store, at)
    text = net_text(after)
    assert after.gross == 9850  # the refunded sale left gross
    assert after.refunds >= 0, f"refunds {after.refunds} (negative: a refund shown as money in); net line: {text}"
    assert after.net == 9850 - 316 - 171, (after, text)  # its fee kept by Stripe, nothing more
    assert after.unsettled == 1 and text is not None and "fees of 1 order still to come" in text, text
    await assert_rollups_match_a_rebuild(store.deps.pool)
    assert await job.tick() == 1
    read = await totals(store, at)
    assert (read.net, read.unsettled) == (9850 - 316 - 171, 0), read
    await assert_rollups_match_a_rebuild(store.deps.pool)


async def test_partial_refund_not_yet_reread(store: Bot, stripe_api: FakeStripe) -> None:
    """A $10.00 refund of a $30.00 USD order (settled in USD: the amount is exact) is taken off at once; a €10.00
    refund of a euro order is not guessed at in dollars, but said to be still to come. Both as a rebuild counts."""
    at = await sell(store, 1, 2)
    job = SettlementJob(store.deps)
    assert await job.tick() == 2
    assert (await store.stripe(refund_sale_1(stripe_api, amount=1000))).status == 200
    assert (await store.stripe(refund_sale_2(stripe_api, amount=1000, settled=1082))).status == 200
    after = await totals(store, at)
    assert (after.gross, after.fees, after.refunds, after.unsettled) == (3000 + 4871, 117 + 171, 1000, 2), after
    await assert_rollups_match_a_rebuild(store.deps.pool)
    assert await job.tick() == 2
    read = await totals(store, at)
    assert (read.refunds, read.unsettled) == (1000 + 1082, 0), read
    await assert_rollups_match_a_rebuild(store.deps.pool)


async def test_the_upgrade_counts_refunds_not_read(empty_dsn: str) -> None:
    """A store from before 0057 with a fully refunded order whose refund was not read yet (settled $48.71, fee $1.71,
    read before the refund): after the upgrade the rollups take off its fee only, count it as waiting, and match a
    rebuild."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0057"])
        at = dt.datetime(2026, 11, 20, 10, 5, tzinfo=dt.UTC)
        await conn.execute(OLD_ORDER, "o_stale", "refunded", 4500, 4500, at, 4871, "USD", 171, 0, None)
        await conn.execute("UPDATE orders SET settled_at = $1, settled_refund_basis = 0", at)
        await migrate(conn)
        store = store_totals(await settlements.settled_totals(conn, start=at.replace(hour=0),
                                                              end=at + dt.timedelta(days=1)), "USD")
        assert (store.gross, store.fees, store.refunds, store.net, store.unsettled) == (0, 171, 0, -171, 1), store
        await assert_rollups_match_a_rebuild(conn)
    finally:
        await conn.close()
