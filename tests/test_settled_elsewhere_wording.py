"""An account that settles euros in euros (a EUR bank account added): the fees job reads the €45.00 sale's balance
transaction, sees EUR, not the store's USD, and gives the order up for good (due 'infinity'). /sales keeps saying
the order is "not converted yet" and its fees are "still to come" — they never will be."""

from __future__ import annotations

from bot.stripe.settle_job import SettlementJob
from tests.conftest import Bot
from tests.fake_stripe import FakeStripe
from tests.settled_store import sell
from tests.test_fx_refund import assert_rollups_match_a_rebuild

pytest_plugins = ["tests.settled_store"]


async def test_an_order_settled_in_another_currency_is_not_promised_to_convert(store: Bot,
                                                                                stripe_api: FakeStripe) -> None:
    stripe_api.balance_transactions["txn_2"].update(currency="eur", amount=4500, fee=160, net=4340,
                                                    exchange_rate=None)
    await sell(store, 1, 2)
    assert await SettlementJob(store.deps).tick() == 1
    row = await store.deps.pool.fetchrow("SELECT due_at, last_error FROM settlement_fetches WHERE order_id = 'pi_2'")
    assert "settled in EUR" in row["last_error"]  # given up: it will not be converted
    text = str((await store.command("/sales"))["blocks"])
    assert "still to come" not in text and "not converted yet" not in text, text
    assert "$30.00 + €45.00 settled in another currency, not counted" in text, text  # said, in its own currency
    await assert_rollups_match_a_rebuild(store.deps.pool)  # the triggers count it apart as a rebuild does
