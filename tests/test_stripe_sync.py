"""Stripe reconciliation through the Events API, against a fake Stripe on 127.0.0.1 serving real payloads."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from bot.answers.json_views import health_json
from bot.answers.snapshots import health_snapshot
from bot.stripe import events_api
from bot.stripe.job import StripeSyncJob
from bot.stripe.sync import RECONCILE_EVERY
from handlers.scheduled.stripe_sync import register
from queries.stripe_sync import recovered_events
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.reference import stripe_fixture, wrap_event


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API, empty."""
    async with FakeStripe() as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    """A clock at the real time (webhook_logs.created_at is PostgreSQL's now()), moved by hand."""
    return FakeClock(dt.datetime.now(dt.UTC))


def around(now: dt.datetime) -> str:
    """BUSINESS_HOURS that hold `now` (warnings are held outside business hours)."""
    return f"{now - dt.timedelta(hours=3):%H:%M}-{now + dt.timedelta(hours=3):%H:%M}"


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack, stripe_api: FakeStripe, clock: FakeClock) -> AsyncIterator[Bot]:
    """A store with a Stripe webhook and STRIPE_API_KEY (a read-only restricted key) pointing at the fake."""
    async with start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe_api.url,
                         BUSINESS_HOURS=around(clock.now)) as bot:
        yield bot


class Sleeps(list[float]):
    """Records the waits the client asks for instead of sleeping through them."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def job(bot: Bot, sleeps: Sleeps | None = None) -> StripeSyncJob:
    """The sync job of `bot`, run by hand."""
    return StripeSyncJob(bot.deps, sleep=sleeps if sleeps is not None else Sleeps())


async def stored(sync: StripeSyncJob) -> int:
    """Run the job once; how many events it stored (it must not have failed)."""
    fed = await sync.tick()
    assert fed is not None, "the run failed"
    return fed.stored


def sale(n: int, at: dt.datetime) -> dict[str, Any]:
    """A real checkout.session.completed event (stripe-ruby-mock) for payment n, created at `at`."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt.update(id=f"evt_sale_{n}", created=int(at.timestamp()))
    evt["data"]["object"].update(id=f"cs_sync_{n}", payment_intent=f"pi_sync_{n}", amount_total=1000 + n)
    return evt


def failure(n: int, at: dt.datetime) -> dict[str, Any]:
    """A real payment_intent.payment_failed event (stripe-ruby-mock), created at `at`."""
    evt = stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json")
    evt.update(id=f"evt_fail_{n}", created=int(at.timestamp()))
    evt["data"]["object"]["id"] = f"pi_fail_{n}"
    return evt


async def via(bot: Bot) -> dict[str, str]:
    """event id → how it arrived."""
    return dict(await bot.deps.pool.fetch("SELECT event_id, via FROM webhook_logs ORDER BY id"))


async def outbox_keys(bot: Bot) -> list[str]:
    """The dedupe keys of every queued Slack message, in order."""
    return [r["dedupe_key"] for r in await bot.deps.pool.fetch("SELECT dedupe_key FROM outbox ORDER BY id")]


async def health_text(bot: Bot) -> str:
    """What /health shows."""
    body = await bot.command("/health")
    assert_valid_message(body)
    return json.dumps(body["blocks"], ensure_ascii=False)


async def test_polling_alone_runs_the_product_without_a_webhook(dsn: str, fake_slack: FakeSlack,
                                                                stripe_api: FakeStripe, clock: FakeClock) -> None:
    """With no webhook secret, the poll is the intake: each new sale is stored and pinged at once, once."""
    async with start_bot(dsn, fake_slack, clock=clock, STRIPE_WEBHOOK_SECRET="", STRIPE_API_KEY=API_KEY,
                         STRIPE_API_URL=stripe_api.url) as bot:
        sync = job(bot)
        assert await sync.tick() is not None  # start-up: nothing yet; watching starts now
        stripe_api.add_event(sale(1, clock.advance(seconds=20)))
        clock.advance(seconds=40)
        assert await stored(sync) == 1
        await bot.drain(ignore_pace=True)
        posts = bot.slack_api.posted()
        assert len(posts) == 1 and "New Sale" in posts[0]["text"] and "late" not in json.dumps(posts[0])
        stripe_api.add_event(sale(2, clock.advance(seconds=5)))
        clock.advance(seconds=55)
        assert await stored(sync) == 1
        assert stripe_api.served()[-1].param("ending_before") == "evt_sale_1"  # from the cursor
        assert await stored(sync) == 0
        await bot.drain(ignore_pace=True)
        assert len(bot.slack_api.posted()) == 2
        assert await via(bot) == {"evt_sale_1": "events_api", "evt_sale_2": "events_api"}
        # Restricted-key friendly: only reads, with the key as a Bearer token.
        assert {(r.method, r.authorization) for r in stripe_api.requests} == {("GET", f"Bearer {API_KEY}")}
        # Every type is listed and filtered here: the handled types are more than the 20 `types[]` Stripe takes.
        assert not [k for r in stripe_api.served() for k, _ in r.params if k == "types[]"]


async def test_events_the_webhook_missed_are_recovered_with_one_late_ping_each(store: Bot, stripe_api: FakeStripe,
                                                                             clock: FakeClock) -> None:
    """A sale and a failure the webhook never delivered are pinged once (marked late); redeliveries are no-ops."""
    sync = job(store)
    start = clock.now
    await sync.tick()
    delivered = stripe_api.add_event(sale(1, start + dt.timedelta(minutes=5)))
    assert (await store.stripe(delivered)).status == 200
    await store.drain(ignore_pace=True)
    missed_sale = stripe_api.add_event(sale(2, start + dt.timedelta(minutes=10)))
    missed_failure = stripe_api.add_event(failure(3, start + dt.timedelta(minutes=12)))
    clock.advance(hours=1)
    assert await stored(sync) == 2
    await store.drain(ignore_pace=True)
    for evt in (missed_sale, missed_failure, delivered):  # Stripe's retries arrive after all
        assert (await store.stripe(evt)).status == 200
    assert await stored(sync) == 0
    await store.drain(ignore_pace=True)
    assert await outbox_keys(store) == ["sale:pi_sync_1", "sale:pi_sync_2", "failure:evt_fail_3"]
    posts = store.slack_api.posted()
    assert sorted(p["text"].split(":")[0] for p in posts) == ["❌ Payment Failed", "💰 New Sale", "💰 New Sale"]
    late = [p for p in posts if "delivered late" in json.dumps(p)]
    assert len(late) == 1 and "pi_sync_2" in json.dumps(late[0])  # the recovered sale, not the webhook's
    for post in posts:
        assert_valid_message(post)
    assert await via(store) == {"evt_sale_1": "webhook", "evt_sale_2": "recovered", "evt_fail_3": "recovered"}


async def test_a_fresh_event_is_left_to_the_webhook_for_a_few_minutes(store: Bot, stripe_api: FakeStripe,
                                                                      clock: FakeClock) -> None:
    """An event younger than the grace period waits for its webhook; if none comes, the poll takes it."""
    sync = job(store)
    await sync.tick()
    clock.advance(minutes=10)
    on_time = stripe_api.add_event(sale(1, clock.now - dt.timedelta(minutes=1)))
    stripe_api.add_event(sale(2, clock.now - dt.timedelta(seconds=30)))
    assert await stored(sync) == 0
    assert (await store.stripe(on_time)).status == 200
    clock.advance(minutes=5)
    assert await stored(sync) == 1
    assert await via(store) == {"evt_sale_1": "webhook", "evt_sale_2": "recovered"}
    assert await outbox_keys(store) == ["sale:pi_sync_1", "sale:pi_sync_2"]


async def test_startup_reconciliation_counts_recovered_events_in_health_and_report(
        store: Bot, stripe_api: FakeStripe, clock: FakeClock) -> None:
    """A store watching for days: the start-up pass recovers what the webhook missed, and says so in /health."""
    old = stripe_api.add_event(sale(0, clock.now - dt.timedelta(days=2)))
    assert (await store.stripe(old)).status == 200
    await store.deps.pool.execute("UPDATE webhook_logs SET created_at = created_at - interval '2 days'")
    for n in range(1, 4):
        stripe_api.add_event(sale(n, clock.now - dt.timedelta(hours=20 + n)))
    fed = await job(store).tick()
    assert fed is not None and fed.stored == 3
    first = stripe_api.served()[0]  # the reconciliation window, from two days back to a few minutes ago
    assert first.param("created[gte]") is not None and first.param("created[lte]") is not None
    text = await health_text(store)
    assert "Stripe Events API" in text and "3 events recovered (24 h) that the webhook missed" in text
    now = dt.datetime.now(dt.UTC)
    assert await recovered_events(store.deps.pool, start=now - dt.timedelta(hours=1), end=now + dt.timedelta(
        minutes=1)) == 3
    assert await outbox_keys(store) == ["sale:pi_sync_0", "sale:pi_sync_3", "sale:pi_sync_2", "sale:pi_sync_1"]


async def test_pages_are_followed_until_has_more_is_false(dsn: str, fake_slack: FakeSlack, stripe_api: FakeStripe,
                                                          clock: FakeClock) -> None:
    """230 events arrive in three pages going back, 150 more in two pages going forward; each stored once."""
    async with start_bot(dsn, fake_slack, clock=clock, STRIPE_WEBHOOK_SECRET="", STRIPE_API_KEY=API_KEY,
                         STRIPE_API_URL=stripe_api.url) as bot:
        sync = job(bot)
        await sync.tick()
        base = clock.now
        for n in range(230):
            stripe_api.add_event(sale(n, base + dt.timedelta(seconds=n // 3)))
        clock.advance(minutes=2)
        assert await stored(sync) == 230
        backward = [r.param("starting_after") for r in stripe_api.served()[-3:]]
        assert backward[0] is None and None not in backward[1:]
        for n in range(230, 380):
            stripe_api.add_event(sale(n, clock.now + dt.timedelta(seconds=n // 3 - 70)))
        clock.advance(minutes=5)
        assert await stored(sync) == 150
        forward = stripe_api.served()[-2:]
        assert forward[0].param("ending_before") == "evt_sale_229"
        assert [r.param("limit") for r in forward] == ["100", "100"]
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM orders") == 380
        keys = await outbox_keys(bot)
        assert len(keys) == len(set(keys)) == 380
        assert keys[:2] == ["sale:pi_sync_0", "sale:pi_sync_1"]  # fed oldest first


async def test_a_429_is_waited_out_as_stripe_asks_and_the_poll_goes_on(store: Bot, stripe_api: FakeStripe,
                                                                      clock: FakeClock) -> None:
    """429 with Retry-After waits that long, without it backs off (1, 2, 4 s), then the same run carries on."""
    sleeps = Sleeps()
    sync = job(store, sleeps)
    await sync.tick()
    stripe_api.add_event(sale(1, clock.now))
    clock.advance(minutes=5)
    stripe_api.fail_next(1, status=429, retry_after="2")
    stripe_api.fail_next(1, status=429)
    assert await stored(sync) == 1
    assert sleeps == [2.0, 2.0]
    assert "failing" not in await health_text(store)


async def test_rate_limited_past_the_bounded_waits_the_run_gives_up_and_keeps_the_cursor(
        store: Bot, stripe_api: FakeStripe, clock: FakeClock) -> None:
    """Four 429s in a row: waits 1, 2 and 4 s, gives this minute up (shown in /health), the next run recovers."""
    sleeps = Sleeps()
    sync = job(store, sleeps)
    await sync.tick()
    stripe_api.add_event(sale(1, clock.now))
    clock.advance(minutes=5)
    stripe_api.fail_next(4, status=429)
    assert await sync.tick() is None
    assert sleeps == [1.0, 2.0, 4.0]
    assert "HTTP 429" in await health_text(store)
    clock.advance(minutes=1)
    assert await stored(sync) == 1


async def test_an_outage_keeps_the_cursor_and_the_next_minute_catches_up(store: Bot, stripe_api: FakeStripe,
                                                                         clock: FakeClock,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A 500 and a timeout fail two runs (each shown in /health); nothing is lost or pinged twice after."""
    monkeypatch.setattr(events_api, "REQUEST_TIMEOUT", aiohttp.ClientTimeout(total=0.3))
    sync = job(store)
    await sync.tick()
    stripe_api.add_event(sale(1, clock.now))
    clock.advance(minutes=5)
    assert await stored(sync) == 1
    cursor = await store.deps.pool.fetchval("SELECT cursor_id FROM stripe_sync_state")
    for n in (2, 3):
        stripe_api.add_event(sale(n, clock.now))
    clock.advance(minutes=5)
    stripe_api.fail_next(1, status=500)
    assert await sync.tick() is None
    assert "failing" in await health_text(store) and "HTTP 500" in await health_text(store)
    stripe_api.fail_next(1, delay=1.0)
    clock.advance(minutes=1)
    assert await sync.tick() is None
    assert "Timeout" in await health_text(store)
    assert await store.deps.pool.fetchval("SELECT cursor_id FROM stripe_sync_state") == cursor
    clock.advance(minutes=1)
    assert await stored(sync) == 2
    text = await health_text(store)
    assert "failing" not in text and "last error" in text
    assert await outbox_keys(store) == ["sale:pi_sync_1", "sale:pi_sync_2", "sale:pi_sync_3"]


async def test_a_failing_look_back_does_not_hold_up_the_new_events(store: Bot, stripe_api: FakeStripe,
                                                                   clock: FakeClock) -> None:
    """The daily reconcile failing (a 500 on its first page) is shown in /health and retried next minute, but the
    same run's poll still brings the new sale in; before, it waited for the look back to succeed."""
    sync = job(store)
    await sync.tick()  # the first run: the state starts now, nothing to look back on
    clock.advance(seconds=RECONCILE_EVERY.total_seconds() + 60)
    stripe_api.add_event(sale(1, clock.now - dt.timedelta(minutes=5)))  # past the webhook's grace
    stripe_api.fail_next(1, status=500)
    reconciled = sync.reconciled_at
    assert await stored(sync) == 1
    assert "failing" in await health_text(store) and "HTTP 500" in await health_text(store)
    assert sync.reconciled_at == reconciled  # not counted as done: tried again next minute
    clock.advance(minutes=1)
    assert await stored(sync) == 0
    assert sync.reconciled_at == clock.now and "failing" not in await health_text(store)
    assert await outbox_keys(store) == ["sale:pi_sync_1"]


async def test_a_rejected_or_underprivileged_key_shows_in_health_without_crashing(
        store: Bot, stripe_api: FakeStripe) -> None:
    """401 (wrong key) and 403 (a restricted key without Events read) are recorded, named, and not raised."""
    stripe_api.api_keys = {"rk_test_another"}
    assert await job(store).tick() is None
    assert "STRIPE_API_KEY was rejected" in await health_text(store)
    stripe_api.api_keys, stripe_api.forbidden = {API_KEY}, {"/v1/events"}
    assert await job(store).tick() is None
    text = await health_text(store)
    assert "🔴 *Stripe Events API*" in text and "Events: read" in text
    now = dt.datetime.now(dt.UTC)
    snapshot = await health_snapshot(store.deps.pool, now=now, in_business_hours=True, mode="http", version="t",
                                     started_at=now, site_url=None)
    component = health_json(snapshot)["components"]["stripe_events_api"]
    assert component["failing"] is True and "HTTP 403" in component["last_error"]


async def test_an_expired_cursor_resumes_from_its_time(store: Bot, stripe_api: FakeStripe, clock: FakeClock) -> None:
    """When Stripe no longer has the cursor's event (30 days), the poll resumes from its `created`."""
    sync = job(store)
    await sync.tick()
    await store.deps.pool.execute("UPDATE stripe_sync_state SET cursor_id = 'evt_gone', cursor_created = $1",
                                  clock.now)
    stripe_api.add_event(sale(1, clock.now + dt.timedelta(seconds=10)))
    clock.advance(minutes=5)
    assert await stored(sync) == 1
    assert await store.deps.pool.fetchval("SELECT cursor_id FROM stripe_sync_state") == "evt_sale_1"


async def test_webhook_silence_warns_while_the_events_api_shows_activity(store: Bot, stripe_api: FakeStripe,
                                                                         clock: FakeClock, dsn: str) -> None:
    """No webhook for an hour but two events recovered: one 'Stripe webhook silent' warning."""
    await job(store).tick()
    for n in (1, 2):
        stripe_api.add_event(sale(n, clock.now + dt.timedelta(minutes=n)))
    clock.advance(minutes=20)
    await job(store).tick()
    alerts = AlertJobs(store.deps, leadership=Leadership(dsn))
    try:
        await alerts.tick()
    finally:
        await alerts.leadership.release()
    await store.drain(ignore_pace=True)
    warnings = [p for p in store.slack_api.posted() if "Stripe webhook silent" in p["text"]]
    assert len(warnings) == 1 and "WARNING" in warnings[0]["text"]
    assert "Events API showed 2 events" in json.dumps(warnings[0]["blocks"])
    assert_valid_message(warnings[0])


async def test_webhook_silence_stays_quiet_while_webhooks_arrive(store: Bot, stripe_api: FakeStripe,
                                                                 clock: FakeClock, dsn: str) -> None:
    """A recovered event alone is no silence when the webhook delivered within the hour."""
    await job(store).tick()
    delivered = stripe_api.add_event(sale(1, clock.now + dt.timedelta(minutes=1)))
    assert (await store.stripe(delivered)).status == 200
    stripe_api.add_event(sale(2, clock.now + dt.timedelta(minutes=2)))
    clock.advance(minutes=20)
    assert await stored(job(store)) == 1
    alerts = AlertJobs(store.deps, leadership=Leadership(dsn))
    try:
        await alerts.tick()
    finally:
        await alerts.leadership.release()
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alerts WHERE rule = 'webhook_silence'") == 0


async def test_no_job_without_an_api_key(bot: Bot) -> None:
    """Without STRIPE_API_KEY nothing is scheduled and /health says how to turn recovery on."""
    assert bot.deps.scheduler is not None
    assert register(bot.deps.scheduler, bot.deps) is None
    assert bot.deps.scheduler.get_job("stripe-sync") is None
    assert "set STRIPE_API_KEY" in await health_text(bot)


def legacy(event_type: str, n: int, at: dt.datetime) -> dict[str, Any]:
    """stripe-ruby-mock's real charge.succeeded / charge.failed as a legacy Charge's (no PaymentIntent)."""
    evt = stripe_fixture(f"stripe-ruby-mock/{event_type}.json")
    evt.update(id=f"evt_legacy_{n}", created=int(at.timestamp()))
    evt["data"]["object"].update(id=f"ch_legacy_{n}", payment_intent=None)
    return evt


async def test_the_poll_feeds_every_handled_type_and_passes_the_others(store: Bot, stripe_api: FakeStripe,
                                                                     clock: FakeClock) -> None:
    """The intake handles more types than the 20 `types[]` GET /v1/events takes: the poll lists them all, feeds the
    handled ones (a legacy Charge's sale and decline here) once, and its cursor passes the others."""
    sync = job(store)
    start = clock.now
    await sync.tick()
    other = {"id": "cus_1", "object": "customer", "created": int(start.timestamp()) + 60}
    stripe_api.add_event(wrap_event(other, "customer.created", event_id="evt_other_1", created=other["created"]))
    stripe_api.add_event(legacy("charge.succeeded", 1, start + dt.timedelta(minutes=2)))
    stripe_api.add_event(legacy("charge.failed", 2, start + dt.timedelta(minutes=3)))
    clock.advance(minutes=10)
    assert await stored(sync) == 2
    newest = stripe_api.add_event(wrap_event({**other, "id": "cus_2"}, "customer.updated", event_id="evt_other_2",
                                             created=int(clock.now.timestamp()) - 400))
    clock.advance(minutes=1)
    assert await stored(sync) == 0
    assert await stored(sync) == 0
    assert stripe_api.served()[-1].param("ending_before") == newest["id"]  # the cursor passed it
    assert await via(store) == {"evt_legacy_1": "recovered", "evt_legacy_2": "recovered"}
    assert await outbox_keys(store) == ["sale:ch_legacy_1", "failure:evt_legacy_2"]
