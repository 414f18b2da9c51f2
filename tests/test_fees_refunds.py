"""Refunds in the fees job: a charge's refunds past the 10 it embeds are paged from GET /v1/refunds, and a refund
that fails or is canceled after it was read gives its amount back to net (the fake Stripe on 127.0.0.1 answers as
Stripe does, refusing what Stripe refuses)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from bot.stripe.events_api import StripeApi, StripeApiError
from bot.stripe.settle_job import SettlementJob
from tests.conftest import Bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.reference import stripe_fixture, wrap_event
from tests.settled_store import balance_transaction, resource, sell, totals

pytest_plugins = ["tests.settled_store"]  # the `stripe_api` and `store` fixtures


def add_refund(stripe_api: FakeStripe, n: int, *, amount: int, settled: int, created: int,
               status: str = "succeeded") -> dict[str, Any]:
    """A refund of sale n's charge, as Stripe's API returns it, with its balance transaction (−settled)."""
    refund = resource("refund")
    refund.update(id=f"re_{n}_{created}", amount=amount, currency="eur", charge=f"ch_{n}", payment_intent=f"pi_{n}",
                  created=created, status=status, balance_transaction=f"txn_re_{n}_{created}")
    stripe_api.charges[f"ch_{n}"]["refunds"]["data"].append(refund)
    stripe_api.balance_transactions[refund["balance_transaction"]] = balance_transaction(
        refund["balance_transaction"], amount=-settled, fee=0, source=refund["id"], type_="refund")
    return refund


def charge_refunded(n: int, amount: int, refunded: int, *, event_id: str) -> dict[str, Any]:
    """pay-rails' charge.refunded as sale n's charge, `refunded` of `amount` given back so far."""
    data = stripe_fixture("pay-rails/charge.refunded.json")
    data["object"].update(id=f"ch_{n}", payment_intent=f"pi_{n}", amount=amount, amount_captured=amount,
                          amount_refunded=refunded, currency="eur", refunded=refunded >= amount)
    return wrap_event(data, "charge.refunded", event_id=event_id, created=int(time.time()))


async def test_a_charge_with_25_refunds_counts_them_all(store: Bot, stripe_api: FakeStripe) -> None:
    """25 refunds of 1.00 (1.08 settled each): the charge embeds the 10 newest, the other 15 come from one page of
    GET /v1/refunds after the 10th, and net takes off all 25."""
    at = await sell(store, 2)
    now = int(time.time())
    refunds = [add_refund(stripe_api, 2, amount=100, settled=108, created=now - 3000 + i) for i in range(25)]
    assert (await store.stripe(charge_refunded(2, 4500, 2500, event_id="evt_re_25"))).status == 200
    assert await SettlementJob(store.deps).tick() == 1
    row = await store.deps.pool.fetchrow("SELECT settled_refunded, fee, net FROM orders WHERE id = 'pi_2'")
    assert tuple(row) == (25 * 108, 171, 4871 - 171 - 25 * 108)
    assert (await totals(store, at)).refunds == 25 * 108
    (listed,) = stripe_api.served("/v1/refunds")
    tenth_newest = refunds[-10]["id"]
    assert sorted(listed.params) == sorted([("charge", "ch_2"), ("expand[]", "data.balance_transaction"),
                                            ("limit", "100"), ("starting_after", tenth_newest)])


async def test_the_refund_list_pages_on_past_100(stripe_api: FakeStripe) -> None:
    """Stripe's refund list, as the fake serves it: 100 a page at most, newest first, `has_more` until the last."""
    for i in range(130):
        add_refund(stripe_api, 4, amount=1, settled=1, created=1_700_000_000 + i)
    async with aiohttp.ClientSession() as session:
        api = StripeApi(session, api_key=API_KEY, base_url=stripe_api.url)
        pages = [p async for p in api.pages("/v1/refunds", [("charge", "ch_4")])]
    assert [len(p.data) for p in pages] == [100, 30] and [p.has_more for p in pages] == [True, False]
    created = [r["created"] for p in pages for r in p.data]
    assert created == sorted(created, reverse=True) and len(set(created)) == 130


@pytest.mark.parametrize(("params", "code"), [
    ([("charge", "ch_2"), ("limit", "101")], "parameter_invalid_integer"),
    ([("charge", "ch_2"), ("customer", "cus_1")], "parameter_unknown"),
    ([("charge", "ch_2"), ("expand[]", "balance_transaction")], "parameter_invalid"),
    ([("charge", "ch_2"), ("starting_after", "re_none")], "resource_missing"),
])
async def test_the_fake_refund_list_refuses_what_stripe_refuses(stripe_api: FakeStripe, params: list[tuple[str, str]],
                                                                code: str) -> None:
    """A limit over 100, a parameter the list does not take, an expansion outside `data.`, an unknown cursor."""
    async with aiohttp.ClientSession() as session:
        api = StripeApi(session, api_key=API_KEY, base_url=stripe_api.url)
        with pytest.raises(StripeApiError) as refused:
            await api.list("/v1/refunds", params)
    assert refused.value.code == code


async def test_a_refund_that_fails_after_it_was_read_returns_to_net(store: Bot, stripe_api: FakeStripe) -> None:
    """A full refund is read (net −fee); then it fails and Stripe reverses it. refund.failed makes the order
    completed again and reads its figures again: nothing refunded, net = gross − fee."""
    at = await sell(store, 2)
    job = SettlementJob(store.deps)
    refund = add_refund(stripe_api, 2, amount=4500, settled=4871, created=int(time.time()) - 60)
    assert (await store.stripe(charge_refunded(2, 4500, 4500, event_id="evt_re_full"))).status == 200
    assert await job.tick() == 1
    pool = store.deps.pool
    assert tuple(await pool.fetchrow("SELECT payment_status, settled_refunded, net FROM orders")) == (
        "refunded", 4871, -171)
    # Stripe's side of the failure: the refund failed (its balance transaction reversed), the charge not refunded.
    refund.update(status="failed", failure_reason="expired_or_canceled_card", failure_balance_transaction="txn_back")
    stripe_api.charges["ch_2"].update(amount_refunded=0, refunded=False)
    failed = wrap_event(dict(refund), "refund.failed", created=int(time.time()))
    failed["api_version"] = "2025-09-30.clover"
    assert (await store.stripe(failed)).status == 200
    assert await job.tick() == 1
    row = await pool.fetchrow("SELECT payment_status, amount_refunded, settled_refunded, fee, net FROM orders")
    assert tuple(row) == ("completed", 0, 0, 171, 4871 - 171)
    after = await totals(store, at)
    assert (after.gross, after.fees, after.refunds, after.net) == (4871, 171, 0, 4871 - 171)
