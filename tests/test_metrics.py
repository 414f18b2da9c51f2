"""GET /metrics: the store's app events are counted like Stripe's, and PostgreSQL's gauges are never served stale."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack

TOKEN = "mon-token-123-long-enough"
INTAKE = "in-tok-now-long-enough-for-a-token"


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with /metrics and the app's intake configured."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN, INTAKE_TOKEN=INTAKE) as bot:
        yield bot


async def samples(bot: Bot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a 200 scrape, by name and sorted labels."""
    resp = await bot.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200, await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(await resp.text()) for s in family.samples}


def received(source: str, event_type: str, outcome: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of one salespulse_webhooks_received_total sample."""
    return ("salespulse_webhooks_received_total",
            (("outcome", outcome), ("source", source), ("type", event_type)))


async def test_app_events_are_counted_by_type_and_outcome(store: Bot) -> None:
    """What the store's app sends shows in salespulse_webhooks_received_total{source="app"}, per event, by type
    and outcome (stored, duplicate, ignored for a $0 order), and a refused body as malformed."""
    body = {"events": [{"type": "order", "id": "A-1", "amount": 4900, "currency": "usd", "product": "Pro"},
                       {"type": "order", "id": "Z-1", "amount": 0, "currency": "usd", "product": "Free seat"},
                       {"type": "error", "id": "e1", "source": "checkout-api", "message": "boom"},
                       {"type": "error", "id": "e1", "source": "checkout-api", "message": "boom"},
                       {"type": "sync_failure", "id": "s1", "system": "ghl", "message": "timeout"}]}
    headers = {"Authorization": f"Bearer {INTAKE}", "Content-Type": "application/json"}
    resp = await store.client.post("/webhooks/events", data=json.dumps(body).encode(), headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await store.client.post("/webhooks/events", data=b'{"type": "nope"}', headers=headers)
    assert resp.status == 400
    got = await samples(store)
    assert {k[1]: v for k, v in got.items() if k[0] == "salespulse_webhooks_received_total"
            and ("source", "app") in k[1]} == {
        received("app", "order", "stored")[1]: 1.0, received("app", "order", "ignored")[1]: 1.0,
        received("app", "error", "stored")[1]: 1.0, received("app", "error", "duplicate")[1]: 1.0,
        received("app", "sync_failure", "stored")[1]: 1.0, received("app", "unknown", "malformed")[1]: 1.0}


async def test_outbox_gauges_are_left_out_when_the_database_cannot_be_read(store: Bot) -> None:
    """Six sales waiting; then PostgreSQL goes away. The scrape still answers (the process's own counters are
    true), but without the outbox gauges, which cannot be known, and with salespulse_database_up 0: Prometheus
    cannot tell a frozen gauge from a live one."""
    for n in range(6):
        await store.stripe(paid_checkout(n, dt.datetime.now(dt.UTC)))
    got = await samples(store)
    assert got["salespulse_outbox_backlog", ()] == 6.0
    assert got["salespulse_database_up", ()] == 1.0
    assert ("salespulse_outbox_oldest_due_age_seconds", ()) in got
    await store.deps.pool.close()
    got = await samples(store)
    assert got["salespulse_database_up", ()] == 0.0
    assert not [name for name, _ in got if name.startswith("salespulse_outbox_")], got
    assert got[received("stripe", "checkout.session.completed", "processed")] == 6.0
