"""Orders the fees job gave up on come back: at once when a refund or dispute changes them, and once a day at the
daily reconciliation for the last 30 days' sales — one request each, given up again at once if Stripe still fails.
/health says how many are given up. A read in flight when an order changes leaves it to be read again."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from bot.answers.gather import gather_health
from bot.blocks.health import health_message
from bot.stripe.settle_job import MAX_ATTEMPTS, SettlementJob
from queries import settlements
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.reference import stripe_fixture, wrap_event
from tests.settled_store import sell

pytest_plugins = ["tests.settled_store"]  # the `stripe_api` fixture


@pytest.fixture
async def clocked(dsn: str, fake_slack: FakeSlack, stripe_api: FakeStripe) -> AsyncIterator[tuple[Bot, FakeClock]]:
    """A keyed store on a clock the test moves; STORE_CURRENCY set, so every request the job makes is a read of an
    order's figures (the account is never read)."""
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe_api.url,
                         STORE_CURRENCY="USD") as bot:
        yield bot, clock


async def give_up(bot: Bot, stripe_api: FakeStripe, job: SettlementJob) -> None:
    """Sale 2 read on its last try while Stripe answers 500: given up (due 'infinity')."""
    await sell(bot, 2)
    stripe_api.fail_next(1, status=500)
    assert await job.tick() == 0
    await bot.deps.pool.execute("UPDATE settlement_fetches SET attempts = $1, due_at = now() - interval '1 s'",
                                MAX_ATTEMPTS - 1)
    stripe_api.fail_next(1, status=500)
    assert await job.tick() == 0
    assert await settlements.backlog(bot.deps.pool) == settlements.Backlog(waiting=0, given_up=1)


def reads(stripe_api: FakeStripe) -> int:
    """Requests for sale 2's figures so far."""
    return sum(r.path == "/v1/payment_intents/pi_2" for r in stripe_api.requests)


async def test_a_refund_brings_back_an_order_given_up_on(clocked: tuple[Bot, FakeClock],
                                                         stripe_api: FakeStripe) -> None:
    """Given up, the order is not read again however long the job runs; a refund of it queues it with fresh tries,
    and the next run reads it (Stripe answers again)."""
    bot, clock = clocked
    job = SettlementJob(bot.deps)
    await give_up(bot, stripe_api, job)
    before = reads(stripe_api)
    clock.advance(hours=7)
    assert await job.tick() == 0 and reads(stripe_api) == before
    refunded = stripe_fixture("pay-rails/charge.refunded.json")
    refunded["object"].update(id="ch_2", payment_intent="pi_2", amount=4500, amount_captured=4500,
                              amount_refunded=1000, currency="eur", refunded=False)
    assert (await bot.stripe(wrap_event(refunded, "charge.refunded", created=int(time.time())))).status == 200
    row = await bot.deps.pool.fetchrow("SELECT attempts, due_at FROM settlement_fetches")
    assert (row["attempts"], row["due_at"]) == (0, clock.now)
    assert await job.tick() == 1
    assert await bot.deps.pool.fetchval("SELECT settled_amount FROM orders WHERE id = 'pi_2'") == 4871


async def test_an_order_given_up_on_gets_one_try_a_day(clocked: tuple[Bot, FakeClock],
                                                       stripe_api: FakeStripe) -> None:
    """The daily reconciliation gives an order given up on one more try when it was last tried over a day ago: one
    request, given up again at once while Stripe fails, none more that day (a restart, another replica), and read
    the day Stripe answers. /health says how many are given up, on one line."""
    bot, clock = clocked
    await give_up(bot, stripe_api, SettlementJob(bot.deps))
    text = "\n".join(b["text"]["text"] for b in health_message(await gather_health(bot.deps), tz=ZoneInfo("UTC"))
                     .blocks if b.get("type") == "section")
    assert [line for line in text.splitlines() if "Stripe fees" in line] == [
        "🟡 *Stripe fees* 1 order given up on (\"not converted yet\"; tried again daily)"]
    before = reads(stripe_api)
    clock.advance(hours=12)
    assert await SettlementJob(bot.deps).tick() == 0 and reads(stripe_api) == before  # a restart: not a day yet
    clock.advance(hours=13)
    stripe_api.fail_next(1, status=500)
    assert await SettlementJob(bot.deps).tick() == 0 and reads(stripe_api) == before + 1
    row = await bot.deps.pool.fetchrow("SELECT attempts, due_at = 'infinity' AS given_up FROM settlement_fetches")
    assert (row["attempts"], row["given_up"]) == (MAX_ATTEMPTS, True)
    clock.advance(hours=1)
    assert await SettlementJob(bot.deps).tick() == 0 and reads(stripe_api) == before + 1
    clock.advance(hours=24)
    assert await SettlementJob(bot.deps).tick() == 1 and reads(stripe_api) == before + 2
    assert await settlements.backlog(bot.deps.pool) == settlements.Backlog(waiting=0, given_up=0)


async def test_a_change_during_a_read_leaves_the_order_to_be_read_again(clocked: tuple[Bot, FakeClock],
                                                                        stripe_api: FakeStripe) -> None:
    """A refund fails while the order's figures are being read (after the claim, before the record): the figures
    read may predate it, so the order stays queued, due when the lease ends, instead of leaving the queue."""
    bot, clock = clocked
    pool, job = bot.deps.pool, SettlementJob(bot.deps)
    await sell(bot, 2)
    assert await job.tick() == 1  # settled
    await settlements.reread(pool, refs=["pi_2"], now=clock.now)
    lease = clock.now + dt.timedelta(minutes=5)
    (claim,) = await settlements.claim(pool, now=clock.now, lease_until=lease, limit=5)
    await settlements.reread(pool, refs=["pi_2"], now=clock.advance(seconds=1))  # the event, during the read
    figures = settlements.Figures(amount=4871, currency="USD", fee=171, refunded=0, net=4700, balance_transaction="t")
    async with pool.acquire() as conn, conn.transaction():
        await settlements.record(conn, claim=claim, figures=figures, at=claim_at(clock, seconds=1))
    assert await pool.fetchval("SELECT due_at FROM settlement_fetches WHERE order_id = 'pi_2'") == lease


def claim_at(clock: FakeClock, *, seconds: int) -> dt.datetime:
    """When the claim was made: `seconds` before the clock now."""
    return clock.now - dt.timedelta(seconds=seconds)
