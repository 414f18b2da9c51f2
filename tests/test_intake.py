"""Stripe intake through the real aiohttp route: signatures, storage once, pings once, bad input."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.blockkit import assert_valid_message
from tests.conftest import STRIPE_SECRET, Bot, start_bot
from tests.fakes import FakeSlack, stripe_signature
from tests.reference import STRIPE_DIR, stripe_fixture, wrap_event

NOW = int(time.time())


def event(relpath: str, *, event_id: str, type_: str | None = None, created: int | None = None,
          **patch: Any) -> dict[str, Any]:
    """A reference Stripe event (wrapped when the file is a bare object) with a unique id and patches."""
    data = stripe_fixture(relpath)
    if data.get("object") == "event":
        evt = copy.deepcopy(data)
        evt["id"] = event_id
        evt["created"] = created or NOW
    else:
        assert type_ is not None, "bare objects need an event type"
        evt = wrap_event(data, type_, event_id=event_id, created=created or NOW)
    evt["data"]["object"].update(patch)
    return evt


async def count(bot: Bot, table: str, where: str = "true") -> int:
    """Rows in a table, read through the bot's own pool."""
    value: int = await bot.deps.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {where}")
    return value


SALE_FIXTURES = [
    ("stripe-ruby-mock/checkout.session.completed.json", None, 3000),
    ("stripe-ruby-mock/checkout.session.completed.payment_mode.json", None, 25000),
    ("stripe-ruby-mock/payment_intent.succeeded.json", None, 2000),
    ("stripe-ruby-mock/invoice.paid.json", None, 2000),
    ("pay-rails/checkout.session.completed.json", "checkout.session.completed", 1900),
    ("dj-stripe/payment_intent_pi_fakefakefakefakefake0001.json", "payment_intent.succeeded", 2000),
    ("dj-stripe/invoice_in_fakefakefakefakefake0001.json", "invoice.paid", 2000),
]


@pytest.mark.parametrize(("relpath", "type_", "amount"), SALE_FIXTURES)
async def test_each_real_sale_fixture_stores_one_order_and_pings_once(
        bot: Bot, relpath: str, type_: str | None, amount: int) -> None:
    """A paid Stripe event from a real SDK test suite becomes one completed order and one valid ping."""
    resp = await bot.stripe(event(relpath, event_id="evt_sale_1", type_=type_))
    assert resp.status == 200, await resp.text()
    await bot.drain()
    orders = await bot.deps.pool.fetch("SELECT amount_total, payment_status FROM orders")
    assert [(r["amount_total"], r["payment_status"]) for r in orders] == [(amount, "completed")]
    posts = bot.slack_api.posted()
    assert len(posts) == 1
    assert bot.slack_api.messages[0]["channel_id"] == "C0SALES"  # #sales-notifications, posted by its id
    assert "New Sale" in posts[0]["text"]
    assert_valid_message(posts[0])


REFERENCE_FILES = sorted(p.relative_to(STRIPE_DIR).as_posix() for p in STRIPE_DIR.rglob("*.json")
                         if p.name != "fixtures3.json")


@pytest.mark.parametrize("path", REFERENCE_FILES)
async def test_every_reference_payload_is_accepted_without_5xx(bot: Bot, path: str) -> None:
    """Every real Stripe payload in the reference set is answered 2xx and every message it causes is valid."""
    data = stripe_fixture(path)
    if data.get("object") != "event":
        guessed = {"charge_ch": "charge.succeeded", "dispute_dp": "charge.dispute.created",
                   "invoice_in": "invoice.paid", "payment_intent_pi": "payment_intent.succeeded"}
        stem = Path(path).stem
        type_ = next((t for prefix, t in guessed.items() if stem.startswith(prefix)), stem)
        data = wrap_event(data, type_, event_id=f"evt_{stem}")
    resp = await bot.stripe(data)
    assert resp.status == 200, await resp.text()
    await bot.drain()
    assert await count(bot, "webhook_logs") == 1
    for post in bot.slack_api.posted():
        assert_valid_message(post)


async def test_redelivered_event_is_a_noop_that_still_answers_2xx(bot: Bot) -> None:
    """Stripe delivering the same event three times stores one order and pings once."""
    evt = event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_dup")
    for _ in range(3):
        resp = await bot.stripe(evt)
        assert resp.status == 200
    assert (await (await bot.stripe(evt)).json())["outcome"] == "duplicate"
    await bot.drain()
    assert await count(bot, "orders") == 1
    assert await count(bot, "webhook_logs") == 1
    assert len(bot.slack_api.posted()) == 1


async def test_one_payment_seen_through_two_event_types_counts_and_pings_once(bot: Bot) -> None:
    """checkout.session.completed and payment_intent.succeeded for the same payment make one order."""
    session = event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_cs",
                    payment_intent="pi_same_payment")
    intent = event("stripe-ruby-mock/payment_intent.succeeded.json", event_id="evt_pi",
                   id="pi_same_payment", amount=3000, amount_received=3000)
    assert (await bot.stripe(intent)).status == 200
    assert (await bot.stripe(session)).status == 200
    await bot.drain()
    rows = await bot.deps.pool.fetch("SELECT id, checkout_session_id, customer_email FROM orders")
    assert len(rows) == 1
    assert rows[0]["id"] == "pi_same_payment"
    assert rows[0]["checkout_session_id"].startswith("cs_")
    assert rows[0]["customer_email"] == "stripe@example.com"  # filled in by the later, richer event
    assert len(bot.slack_api.posted()) == 1


async def test_older_event_never_overwrites_a_newer_state(bot: Bot) -> None:
    """An async success arriving before the earlier 'unpaid' completion leaves the order completed."""
    succeeded = event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_async_ok",
                      created=NOW - 10, payment_status="paid", payment_intent="pi_async")
    succeeded["type"] = "checkout.session.async_payment_succeeded"
    unpaid = event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_unpaid",
                   created=NOW - 600, payment_status="unpaid", payment_intent="pi_async")
    assert (await bot.stripe(succeeded)).status == 200
    assert (await bot.stripe(unpaid)).status == 200
    await bot.drain()
    status = await bot.deps.pool.fetchval("SELECT payment_status FROM orders")
    session = await bot.deps.pool.fetchval("SELECT status FROM checkout_sessions")
    assert (status, session) == ("completed", "completed")
    assert len(bot.slack_api.posted()) == 1


async def test_pending_checkout_becomes_a_sale_when_the_async_payment_succeeds(bot: Bot) -> None:
    """An unpaid completion is pending (no ping); the later async success completes it and pings once."""
    unpaid = event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_p1",
                   created=NOW - 60, payment_status="unpaid", payment_intent="pi_bank")
    assert (await bot.stripe(unpaid)).status == 200
    await bot.drain()
    assert await bot.deps.pool.fetchval("SELECT payment_status FROM orders") == "pending"
    assert bot.slack_api.posted() == []
    ok = event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_p2",
               payment_status="paid", payment_intent="pi_bank")
    ok["type"] = "checkout.session.async_payment_succeeded"
    assert (await bot.stripe(ok)).status == 200
    await bot.drain()
    assert await bot.deps.pool.fetchval("SELECT payment_status FROM orders") == "completed"
    assert len(bot.slack_api.posted()) == 1


async def test_payment_failure_pings_the_alerts_channel_with_stripes_reason(bot: Bot) -> None:
    """payment_intent.payment_failed goes to #system-alerts with last_payment_error.message."""
    resp = await bot.stripe(event("stripe-ruby-mock/payment_intent.payment_failed.json", event_id="evt_f"))
    assert resp.status == 200
    await bot.drain()
    posts = bot.slack_api.posted()
    assert len(posts) == 1
    assert bot.slack_api.messages[0]["channel_id"] == "C0ALERTS"  # #system-alerts
    assert "Your card was declined." in json.dumps(posts[0]["blocks"])
    assert_valid_message(posts[0])
    assert await count(bot, "payment_failures") == 1
    assert await count(bot, "orders", "payment_status = 'failed'") == 1


async def test_full_and_partial_refunds_update_the_order_and_ping(bot: Bot) -> None:
    """A partial refund keeps the order completed; refunding the rest marks it refunded; each pings once."""
    sale = event("stripe-ruby-mock/payment_intent.succeeded.json", event_id="evt_s", id="pi_r",
                 amount=1500, amount_received=1500)
    sale["data"]["object"]["charges"]["data"][0]["id"] = "ch_r"
    await bot.stripe(sale)
    partial = event("pay-rails/charge.refunded.json", event_id="evt_r1", type_="charge.refunded",
                    id="ch_r", payment_intent="pi_r", amount=1500, amount_refunded=500)
    full = event("pay-rails/charge.refunded.json", event_id="evt_r2", type_="charge.refunded",
                 id="ch_r", payment_intent="pi_r", amount=1500, amount_refunded=1500)
    assert (await bot.stripe(partial)).status == 200
    row = await bot.deps.pool.fetchrow("SELECT payment_status, amount_refunded FROM orders")
    assert (row["payment_status"], row["amount_refunded"]) == ("completed", 500)
    assert (await bot.stripe(full)).status == 200
    assert (await bot.stripe(partial)).status == 200  # a redelivery of the older refund changes nothing
    row = await bot.deps.pool.fetchrow("SELECT payment_status, amount_refunded FROM orders")
    assert (row["payment_status"], row["amount_refunded"]) == ("refunded", 1500)
    await bot.drain()
    texts = [p["text"] for p in bot.slack_api.posted()]
    # Both refunds were waiting at once: one message tells them (bot/blocks/ping_burst.py).
    assert len(texts) == 2 and texts[1] == "↩️ 2 refunds in the last minute", texts
    listed = json.dumps(bot.slack_api.posted()[1]["blocks"], ensure_ascii=False)
    assert "• Partial refund: $5.00 of $15.00" in listed and "• Refund: $15.00" in listed, listed


async def test_dispute_is_recorded_and_pinged_once(bot: Bot) -> None:
    """charge.dispute.created is stored and announced in the alerts channel once."""
    evt = event("stripe-ruby-mock/charge.dispute.created.json", event_id="evt_d")
    await bot.stripe(evt)
    await bot.stripe(evt)
    await bot.drain()
    assert await count(bot, "disputes") == 1
    posts = bot.slack_api.posted()
    assert len(posts) == 1 and bot.slack_api.messages[0]["channel_id"] == "C0ALERTS"


async def test_unknown_event_type_is_logged_ignored_and_answered_2xx(bot: Bot) -> None:
    """invoice.payment_action_required is acknowledged and stored as ignored, with no order and no ping."""
    resp = await bot.stripe(event("stripe-ruby-mock/invoice.payment_action_required.json", event_id="evt_u"))
    assert resp.status == 200
    assert (await resp.json())["outcome"] == "ignored"
    assert await count(bot, "webhook_logs", "status = 'ignored'") == 1
    assert await count(bot, "orders") == 0


def _forgeries(body: bytes) -> dict[str, dict[str, str]]:
    good = stripe_signature(body, STRIPE_SECRET)
    t = good.split(",")[0].removeprefix("t=")
    return {
        "missing header": {},
        "empty header": {"Stripe-Signature": ""},
        "garbage header": {"Stripe-Signature": "not a signature"},
        "wrong secret": {"Stripe-Signature": stripe_signature(body, "whsec_attacker")},
        "only v0": {"Stripe-Signature": good.replace("v1=", "v0=")},
        "bad v1": {"Stripe-Signature": f"t={t},v1={'0' * 64}"},
        "stale timestamp": {"Stripe-Signature": stripe_signature(body, STRIPE_SECRET,
                                                                  timestamp=int(time.time()) - 301)},
        "timestamp swapped": {"Stripe-Signature": good.replace(f"t={t}", f"t={int(t) - 1}")},
    }


@pytest.mark.parametrize("variant", list(_forgeries(b"x")))
async def test_forged_signatures_are_rejected_and_nothing_is_stored(bot: Bot, variant: str) -> None:
    """Every forged or stale Stripe-Signature variant gets 400 and leaves the database untouched."""
    body = json.dumps(event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_x")).encode()
    headers = _forgeries(body)[variant]
    resp = await bot.client.post("/webhooks/stripe", data=body, headers=headers)
    assert resp.status == 400
    assert "signature" in (await resp.json())["error"]
    assert await count(bot, "webhook_logs") == 0
    assert await count(bot, "outbox") == 0


async def test_tampered_body_is_rejected(bot: Bot) -> None:
    """A body changed after signing (amount raised) fails verification."""
    body = json.dumps(event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_t")).encode()
    header = stripe_signature(body, STRIPE_SECRET)
    resp = await bot.client.post("/webhooks/stripe", data=body.replace(b"3000", b"9000"),
                                 headers={"Stripe-Signature": header})
    assert resp.status == 400
    assert await count(bot, "webhook_logs") == 0


async def test_reference_signature_vector_verifies(bot: Bot) -> None:
    """The verifier accepts the stripe-python vector with an extra bad v1 and a v0 entry (time-agnostic)."""
    from bot.stripe.signature import verify
    from tests.reference import FIXTURES_DIR

    vectors = json.loads((FIXTURES_DIR / "signature_vectors.json").read_text())["stripe"]["vectors"]
    for vector in vectors:
        if "payload" in vector:
            verify(vector["payload"].encode(), vector["header"], [vector["secret"]], tolerance=0)


async def test_rotated_secrets_both_verify(dsn: str, fake_slack: FakeSlack) -> None:
    """During rotation, events signed with either configured secret are accepted."""
    async with start_bot(dsn, fake_slack, STRIPE_WEBHOOK_SECRET="whsec_old,whsec_new") as bot:
        for i, secret in enumerate(["whsec_old", "whsec_new"]):
            evt = event("stripe-ruby-mock/checkout.session.completed.json", event_id=f"evt_rot{i}",
                        id=f"cs_rot{i}", payment_intent=f"pi_rot{i}")
            assert (await bot.stripe(evt, secret=secret)).status == 200
        assert (await bot.stripe(event("stripe-ruby-mock/checkout.session.completed.json",
                                       event_id="evt_rot2"), secret=STRIPE_SECRET)).status == 400
        assert await count(bot, "orders") == 2


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"id": 1}', b'{"id": "evt", "type": "x"}',
                                  b"\xff\xfe invalid utf-8", b"[" * 100_000 + b"]" * 100_000])
async def test_malformed_bodies_get_400_and_change_nothing(bot: Bot, body: bytes) -> None:
    """Validly signed bodies that are not Stripe events are rejected with a clear 400."""
    resp = await bot.client.post("/webhooks/stripe", data=body,
                                 headers={"Stripe-Signature": stripe_signature(body, STRIPE_SECRET)})
    assert resp.status == 400
    assert (await resp.json())["error"]
    assert await count(bot, "webhook_logs") == 0


async def test_oversized_body_gets_413(bot: Bot) -> None:
    """A body over 1 MiB is refused before it is read whole."""
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    resp = await bot.client.post("/webhooks/stripe", data=body,
                                 headers={"Stripe-Signature": stripe_signature(body, STRIPE_SECRET)})
    assert resp.status == 413
    assert "Maximum request body size 1048576 exceeded" in (await resp.json())["error"]
    assert await count(bot, "webhook_logs") == 0


async def test_intake_without_a_configured_secret_answers_503(dsn: str, fake_slack: FakeSlack) -> None:
    """No STRIPE_WEBHOOK_SECRET: the route says so instead of accepting unverifiable events."""
    async with start_bot(dsn, fake_slack, STRIPE_WEBHOOK_SECRET="") as bot:
        resp = await bot.stripe(event("stripe-ruby-mock/checkout.session.completed.json", event_id="e"))
        assert resp.status == 503
        assert "STRIPE_WEBHOOK_SECRET" in (await resp.json())["error"]


async def test_database_down_answers_503_so_stripe_retries(bot: Bot, dsn: str) -> None:
    """With PostgreSQL unreachable the intake answers 503, never 2xx for something it did not store."""
    await bot.deps.pool.close()
    resp = await bot.stripe(event("stripe-ruby-mock/checkout.session.completed.json", event_id="evt_down"))
    assert resp.status == 503
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM webhook_logs") == 0
    finally:
        await conn.close()


async def test_healthz_answers_ok_when_ready(bot: Bot) -> None:
    """/healthz is 200 once the database is migrated and routes are up."""
    resp = await bot.client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
