"""Checkouts in progress, which no webhook announces, listed from the Stripe API (bot/stripe/open_checkouts.py)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.stripe.open_checkouts import OpenCheckoutsJob
from queries import sales
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fake_stripe import FakeStripe
from tests.fakes import FakeSlack
from tests.reference import stripe_fixture
from tests.settled_store import keyed_store


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API, empty."""
    async with FakeStripe() as fake:
        yield fake


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack, stripe_api: FakeStripe) -> AsyncIterator[Bot]:
    """A store with a webhook and STRIPE_API_KEY pointing at the fake."""
    async with keyed_store(dsn, fake_slack, stripe_api) as bot:
        yield bot


def session(session_id: str, created: dt.datetime, **fields: Any) -> dict[str, Any]:
    """A Checkout Session as GET /v1/checkout/sessions lists it (stripe-ruby-mock's, still open)."""
    obj = copy.deepcopy(stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")["data"]["object"])
    obj.update(id=session_id, created=int(created.timestamp()), status="open", payment_status="unpaid",
               amount_total=4900, currency="usd", customer_details={"email": "browsing@example.com"},
               payment_intent=None)
    obj.update(fields)
    return obj


async def in_checkout(bot: Bot) -> int:
    """The figure /sales, the dashboard and /api/monitoring/sales show as people in checkout."""
    return await sales.pending_checkouts(bot.deps.pool, since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))


async def test_sessions_in_progress_are_counted_until_an_event_settles_them(store: Bot, stripe_api: FakeStripe) -> None:
    """Open sessions of the last 30 minutes become pending checkouts; older, finished and setup-mode ones do not.
    A completion then wins, even against a listing read before it that still says open (and another amount)."""
    now = dt.datetime.now(dt.UTC)
    stripe_api.sessions += [session("cs_browsing", now - dt.timedelta(minutes=5)),
                            session("cs_1", now - dt.timedelta(minutes=3)),
                            session("cs_long_gone", now - dt.timedelta(minutes=40)),
                            session("cs_paid", now - dt.timedelta(minutes=4), status="complete"),
                            session("cs_card_saved", now - dt.timedelta(minutes=2), mode="setup")]
    job = OpenCheckoutsJob(store.deps)
    assert await job.tick() == 2
    assert await in_checkout(store) == 2
    row = await store.deps.pool.fetchrow("SELECT status, amount_total, currency, customer_email, completed_at"
                                         " FROM checkout_sessions WHERE id = 'cs_browsing'")
    assert dict(row) == {"status": "pending", "amount_total": 4900, "currency": "USD",
                         "customer_email": "browsing@example.com", "completed_at": None}
    assert [(r.param("status"), r.method) for r in stripe_api.served("/v1/checkout/sessions")] == [("open", "GET")]
    assert (await store.stripe(paid_checkout(1, now - dt.timedelta(minutes=1)))).status == 200
    # The fake still lists cs_1 as open, at 49.00: a listing read just before it completed at 30.00.
    assert await job.tick() == 0  # nothing new: what is stored stays as it is
    assert await in_checkout(store) == 1
    completed = await store.deps.pool.fetchrow("SELECT status, amount_total FROM checkout_sessions WHERE id = 'cs_1'")
    assert tuple(completed) == ("completed", 3000)
    conversion = await sales.conversion(store.deps.pool, start=now - dt.timedelta(hours=1), end=now)
    assert (conversion.started, conversion.completed) == (2, 1)


async def test_a_key_without_the_permission_changes_nothing(store: Bot, stripe_api: FakeStripe,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A restricted key that may not read Checkout Sessions: logged, nothing stored, nothing raised."""
    stripe_api.sessions.append(session("cs_browsing", dt.datetime.now(dt.UTC)))
    stripe_api.forbidden.add("/v1/checkout/sessions")
    assert await OpenCheckoutsJob(store.deps).tick() is None
    assert await in_checkout(store) == 0
    assert "Stripe open checkouts" in caplog.text


async def test_without_a_key_nothing_is_asked(dsn: str, fake_slack: FakeSlack, stripe_api: FakeStripe) -> None:
    async with start_bot(dsn, fake_slack, STRIPE_API_URL=stripe_api.url) as bot:
        assert await OpenCheckoutsJob(bot.deps).tick() is None
    assert stripe_api.requests == []
