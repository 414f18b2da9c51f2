"""`salespulse backfill --days N` against a fake Stripe: history imported from real payloads, nothing pinged."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main
from bot.stripe.job import StripeSyncJob
from tests.conftest import start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.reference import stripe_fixture

NOW = dt.datetime.now(dt.UTC)


def ago(days: float) -> int:
    """Unix seconds `days` before the test started."""
    return int((NOW - dt.timedelta(days=days)).timestamp())


def obj(relpath: str, **patch: Any) -> dict[str, Any]:
    """The object inside a real Stripe event, patched: what a list endpoint returns.

    A PaymentIntent's embedded charges get ids of their own: the fixtures share one charge id, which would
    (rightly) make every payment the same order."""
    found = {**copy.deepcopy(stripe_fixture(relpath)["data"]["object"]), **patch}
    if found.get("object") == "payment_intent":
        for charge in found.get("charges", {}).get("data", []):
            charge.update(id=f"ch_of_{found['id']}", payment_intent=found["id"])
    return found


def event(relpath: str, event_id: str, days: float, **patch: Any) -> dict[str, Any]:
    """A real Stripe event from the reference set with its own id, `days` old, its object patched."""
    evt = stripe_fixture(relpath)
    evt.update(id=event_id, created=ago(days))
    evt["data"]["object"] = obj(relpath, **patch)
    return evt


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    """Sixty days of a store: events for the last 30, and older sessions and payment intents."""
    fake = await FakeStripe().start()
    cs, pi = "stripe-ruby-mock/checkout.session.completed.json", "stripe-ruby-mock/payment_intent.succeeded.json"
    refund = "stripe-ruby-mock/charge.refunded.json"
    fake.add_event(event(cs, "evt_new_sale", 2, id="cs_new", payment_intent="pi_new", amount_total=4000))
    fake.add_event(event(refund, "evt_new_refund", 1, id="ch_new", payment_intent="pi_new", amount=4000,
                         amount_captured=4000, amount_refunded=4000))
    fake.add_event(event("stripe-ruby-mock/payment_intent.payment_failed.json", "evt_new_fail", 3, id="pi_fail"))
    fake.add_event(event("stripe-ruby-mock/customer.subscription.created.json", "evt_other", 4))
    # A type the bot does not handle: listed (GET /v1/events is not filtered by type), never imported.
    fake.add_event(event("stripe-ruby-mock/invoice.payment_action_required.json", "evt_unhandled", 4))
    fake.sessions += [obj(cs, id="cs_old", payment_intent="pi_old", amount_total=2500, created=ago(40)),
                      obj(cs, id="cs_gone", status="expired", payment_intent=None, created=ago(36),
                          expires_at=ago(35)),
                      obj(cs, id="cs_open", status="open", payment_intent=None, created=ago(31))]
    fake.intents += [obj(pi, id="pi_old", amount=2500, amount_received=2500, created=ago(40)),
                     obj(pi, id="pi_older", amount=9000, amount_received=9000, created=ago(45),
                         latest_charge="ch_older"),
                     obj(pi, id="pi_unpaid", status="requires_payment_method", created=ago(50))]
    fake.charges["ch_older"] = obj(refund, id="ch_older", payment_intent="pi_older", amount=9000,
                                   amount_captured=9000, amount_refunded=1500, refunded=False, created=ago(45))
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty working directory (no .env) and no Slack settings from the machine."""
    monkeypatch.chdir(tmp_path)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


async def backfill(days: int, monkeypatch: pytest.MonkeyPatch, dsn: str, stripe_api: FakeStripe) -> int:
    """Run `salespulse backfill --days N` as a user would (in a thread: it runs its own event loop)."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_API_URL", stripe_api.url)
    return await asyncio.to_thread(main, ["backfill", "--days", str(days)])


async def test_backfill_imports_sixty_days_without_a_single_ping(
        dsn: str, stripe_api: FakeStripe, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Events for the last 30 days and listings before: real orders, refunds and checkouts, an empty outbox."""
    assert await backfill(60, monkeypatch, dsn, stripe_api) == 0
    assert "no pings sent" in capsys.readouterr().out
    async with start_bot(dsn, fake_slack, STRIPE_WEBHOOK_SECRET="", STRIPE_API_KEY=API_KEY,
                         STRIPE_API_URL=stripe_api.url) as bot:
        db = bot.deps.pool
        orders = {r["id"]: (r["payment_status"], r["amount_total"], r["amount_refunded"]) for r in await db.fetch(
            "SELECT id, payment_status, amount_total, amount_refunded FROM orders")}
        assert orders == {"pi_new": ("refunded", 4000, 4000), "pi_fail": ("failed", 2000, 0),
                          "pi_old": ("completed", 2500, 0), "pi_older": ("completed", 9000, 1500)}
        sessions = dict(await db.fetch("SELECT id, status FROM checkout_sessions"))
        assert sessions == {"cs_new": "completed", "cs_old": "completed", "cs_gone": "expired"}
        assert await db.fetchval("SELECT count(*) FROM outbox") == 0
        assert {r["via"] for r in await db.fetch("SELECT via FROM webhook_logs")} == {"backfill"}
        assert not await db.fetchval("SELECT count(*) FROM webhook_logs WHERE event_id = 'evt_unhandled'")
        # Listings were read only for the days the Events API no longer covers.
        assert all(int(r.param("created[gte]") or 0) < ago(29) for r in stripe_api.served("/v1/payment_intents"))
        assert {r.param("expand[]") for r in stripe_api.served("/v1/payment_intents")} == {"data.latest_charge"}

        # The bot takes over from where the backfill stopped: history stays quiet, a new sale pings.
        live = event("stripe-ruby-mock/checkout.session.completed.json", "evt_live", 0, id="cs_live",
                     payment_intent="pi_live")
        live["created"] = int(dt.datetime.now(dt.UTC).timestamp()) + 1  # after the backfill's "now"
        stripe_api.add_event(live)
        sync = StripeSyncJob(bot.deps)
        fed = await sync.tick()
        assert fed is not None and fed.stored == 1
        assert await db.fetchval("SELECT dedupe_key FROM outbox") == "sale:pi_live"


async def test_backfill_twice_imports_nothing_new(dsn: str, stripe_api: FakeStripe, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A second run finds everything already stored."""
    assert await backfill(60, monkeypatch, dsn, stripe_api) == 0
    capsys.readouterr()
    assert await backfill(60, monkeypatch, dsn, stripe_api) == 0
    assert "backfilled 60 day(s): 0 imported" in capsys.readouterr().out


async def test_backfill_without_a_key_or_with_a_rejected_one_fails_clearly(
        dsn: str, stripe_api: FakeStripe, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """No STRIPE_API_KEY, or one Stripe refuses: exit 1 with one line saying so."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    assert await asyncio.to_thread(main, ["backfill", "--days", "3"]) == 1
    assert "set STRIPE_API_KEY" in capsys.readouterr().err
    stripe_api.api_keys = {"rk_test_other"}
    assert await backfill(3, monkeypatch, dsn, stripe_api) == 1
    assert "STRIPE_API_KEY was rejected" in capsys.readouterr().err


@pytest.mark.parametrize("version", ["acacia", "basil", "clover", "dahlia", "endive"])
async def test_a_subscription_started_through_checkout_is_one_order_in_every_version(
        dsn: str, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """40 days ago, in the account's version: the session names its invoice; from basil on the PaymentIntent does
    not, and only the listed InvoicePayment ties the two (without it the backfill made two orders of one payment)."""
    story = f"versions/{version}/subscription_first"
    async with FakeStripe() as fake:
        fake.sessions.append(obj(f"{story}/checkout.session.completed.json", created=ago(40)))
        fake.intents.append(obj(f"{story}/payment_intent.succeeded.json", created=ago(40)))
        if version != "acacia":
            fake.invoice_payments.append(obj(f"{story}/invoice_payment.paid.json", created=ago(40)))
        assert await backfill(45, monkeypatch, dsn, fake) == 0
        read_links = fake.served("/v1/invoice_payments")
        assert bool(read_links) is (version != "acacia")  # only an account whose PaymentIntents say no invoice
        assert all(r.param("status") == "paid" for r in read_links)
    async with start_bot(dsn, fake_slack, STRIPE_WEBHOOK_SECRET="") as bot:
        orders = await bot.deps.pool.fetch("SELECT payment_status, amount_total FROM orders")
        assert [(r["payment_status"], r["amount_total"]) for r in orders] == [("completed", 1900)]
