"""Shared fixtures: real PostgreSQL (TEST_DATABASE_URL or embedded), fresh databases, fake Slack, the app."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import build_web_app, running
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.db import create_pool, embedded_postgres, migrate
from bot.deps import Deps
from bot.reports.reporter import Reporter
from tests.fakes import FakeSlack, slack_signature, stripe_signature
from tests.reference import stripe_fixture

# Imported by test modules before their `pytest_plugins` line loads it: rewrite its asserts all the same.
pytest.register_assert_rewrite("tests.settled_store")

STRIPE_SECRET = "whsec_test_secret"
SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
_counter = itertools.count()


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at another database (works for TCP and Unix-socket URIs)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: TEST_DATABASE_URL when set, else an embedded one for this session."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    # Not under pytest's own temp root: a concurrent pytest run prunes old numbered dirs there.
    with tempfile.TemporaryDirectory(prefix="salespulse-test-pg-") as folder, embedded_postgres(Path(folder)) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def template_db(server_dsn: str) -> Iterator[str]:
    """A migrated template database that fresh test databases are cloned from."""
    name = f"salespulse_tpl_{os.getpid()}"

    async def create() -> None:
        admin = await asyncpg.connect(server_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        conn = await asyncpg.connect(with_database(server_dsn, name))
        await migrate(conn)
        await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(server_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """An empty database of its own, not cloned from the template: for upgrade tests, whose migrations run from the
    start (or up to the version before the one under test)."""
    name = f"salespulse_up{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"salespulse_t{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        yield with_database(server_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to a fresh, migrated database (no jsonb codec: binary COPY needs asyncpg's own)."""
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """The bot's kind of pool (jsonb as Python objects) on a fresh database."""
    p = await create_pool(dsn, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a fresh database, inside a transaction rolled back at teardown."""
    conn = await asyncpg.connect(dsn)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    tx = conn.transaction()
    await tx.start()
    try:
        yield conn
    finally:
        await tx.rollback()
        await conn.close()


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack Web API listening on 127.0.0.1."""
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.stop()


def make_settings(**env: Any) -> Settings:
    """Settings from explicit values only (no .env, no stray environment), as the contract names them."""
    # Sales ping at once unless a test is about settling (SALE_SETTLE_SECONDS): most drain right after posting.
    # Renewals ping at once too (SUBSCRIPTION_RENEWALS=ping): a renewal held for its hour would never drain.
    base: dict[str, Any] = {"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "STORE_TIMEZONE": "UTC",
                            "SALE_SETTLE_SECONDS": "0", "SUBSCRIPTION_RENEWALS": "ping"}
    base.update(env)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]  # aliases accepted at runtime


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        """Move forward by a timedelta's keyword arguments; return the new time."""
        self.now += dt.timedelta(**delta)
        return self.now


@dataclass
class Bot:
    """A running bot: HTTP client on its real routes, its deps, and the fake Slack it talks to."""

    client: TestClient[Any, Any]
    deps: Deps
    slack_api: FakeSlack

    async def stripe(self, event: dict[str, Any] | bytes, *, secret: str = STRIPE_SECRET,
                     headers: dict[str, str] | None = None) -> Any:
        """POST a Stripe event signed as Stripe signs it."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        hdrs = {"Stripe-Signature": stripe_signature(body, secret), "Content-Type": "application/json"}
        hdrs.update(headers or {})
        return await self.client.post("/webhooks/stripe", data=body, headers=hdrs)

    async def slack(self, form: dict[str, str], *, secret: str = SLACK_SIGNING_SECRET,
                    timestamp: int | None = None, headers: dict[str, str] | None = None) -> Any:
        """POST a form body to /slack/events signed as Slack signs it (with `headers` added: Host, a proxy's)."""
        body = urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   **slack_signature(body, secret, timestamp=timestamp), **(headers or {})}
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def slack_event(self, event: dict[str, Any], *, secret: str = SLACK_SIGNING_SECRET) -> Any:
        """POST an Events API callback (JSON) to /slack/events, signed as Slack signs it."""
        body = json.dumps({"token": "legacy", "team_id": "T000", "api_app_id": "A000", "type": "event_callback",
                           "event_id": f"Ev{next(_counter)}", "event_time": int(dt.datetime.now(dt.UTC).timestamp()),
                           "event": event}).encode()
        headers = {"Content-Type": "application/json", **slack_signature(body, secret)}
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def button(self, action_id: str, value: str, *, user: str, view: bool = False,
                     channel: str = "C_ALERTS") -> Any:
        """Click a button as Slack sends it: a signed block_actions payload, from a message or the Home tab."""
        container = {"type": "view", "view_id": "V1"} if view else {"type": "message", "message_ts": "1.000001"}
        payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": "T0"}, "api_app_id": "A1",
                   "token": "legacy", "trigger_id": "1.2", "container": container,
                   "actions": [{"type": "button", "action_id": action_id, "value": value, "action_ts": "1"}]}
        if not view:  # Home tab clicks carry no channel and no response_url
            payload |= {"channel": {"id": channel},
                        "response_url": self.slack_api.url.replace("/api/", "/hooks/click")}
        return await self.slack({"payload": json.dumps(payload)})

    async def command(self, command: str, text: str = "", *, user_id: str = "U123", channel_id: str = "C123",
                      response_url: str | None = None) -> dict[str, Any]:
        """Type a slash command; return the ack body Slack would show (status asserted 200)."""
        resp = await self.slack({"command": command, "text": text, "user_id": user_id, "user_name": "owner",
                                 "channel_id": channel_id, "team_id": "T000", "team_domain": "store",
                                 "token": "legacy", "trigger_id": "1.2.3",
                                 "response_url": response_url or self.slack_api.url.replace("/api/", "/hooks/resp")})
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def drain(self, *, until_idle: bool = True, within: float = 10.0, ignore_pace: bool = False) -> None:
        """Run the delivery worker until the outbox holds nothing due (`ignore_pace`: skip the 1 s spacing,
        for tests whose clock stands still)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            if ignore_pace:
                await self.deps.pool.execute("UPDATE channel_pace SET next_post_at = '2000-01-01T00:00:00Z'")
            await self.deps.worker.drain()
            pending = await self.deps.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE status = 'pending'")
            if pending == 0 or not until_idle:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("outbox did not drain in time")


async def crash_after_slack_accepts(bot: Bot, slack: FakeSlack, *, messages: int) -> None:
    """Post the next due message, then kill the worker mid-call: Slack keeps the message (`messages` in the channel
    by then), the answer never arrives, the pass's transaction rolls back and its attempt record stays."""
    await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = now() - interval '1 hour'")
    slack.fail_next(1, accept=True, delay=3)  # posted, but the answer never comes back in time
    stuck = asyncio.create_task(bot.deps.worker.drain())
    for _ in range(200):
        if len(slack.messages) == messages:
            break
        await asyncio.sleep(0.02)
    stuck.cancel()  # the process dies mid-call
    with contextlib.suppress(asyncio.CancelledError):
        await stuck


async def post_report(bot: Bot) -> Reporter:
    """Run the report job on the bot's clock and deliver what it queued (the pace row opened first, since
    the test clock stands before the database's real now())."""
    reporter = Reporter.from_deps(bot.deps)
    assert len(await reporter.run_due()) == 1
    await bot.deps.pool.execute("INSERT INTO channel_pace (channel, next_post_at) VALUES ('reports', 'epoch')"
                                " ON CONFLICT (channel) DO UPDATE SET next_post_at = 'epoch'")
    await bot.drain()
    return reporter


def paid_checkout(n: int, at: dt.datetime, *, amount: int = 3000, currency: str = "usd",
                  email: str = "buyer@example.com", product: str | None = None) -> dict[str, Any]:
    """A real checkout.session.completed event for payment n, paid at `at`."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt["id"], evt["created"] = f"evt_{n}", int(at.timestamp())
    evt["data"]["object"].update(id=f"cs_{n}", payment_intent=f"pi_{n}", amount_total=amount, currency=currency,
                                 customer_details={"email": email}, created=int(at.timestamp()) - 60)
    if product is not None:
        evt["data"]["object"]["metadata"] = {"product_name": product}
    return evt


@contextlib.asynccontextmanager
async def start_bot(dsn: str, slack: FakeSlack, *, background_worker: bool = False, clock: Clock = utcnow,
                    **env: Any) -> AsyncIterator[Bot]:
    """The real app on a test server, talking to `slack`; the worker runs only when asked."""
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
           "SLACK_API_URL": slack.url, **env}
    settings = make_settings(**{k: v for k, v in env.items() if v is not None})
    async with running(settings, dsn=dsn, clock=clock, jobs=False) as services:
        for task in services.tasks:
            if task.get_name() == "delivery" and not background_worker:
                task.cancel()
            if task.get_name() == "channels":  # the start-up joins, done before the test touches the fake
                await asyncio.wait_for(asyncio.shield(task), timeout=10)
        app = build_web_app()
        services.attach(app)
        async with TestClient(TestServer(app)) as client:
            yield Bot(client=client, deps=services.deps, slack_api=slack)


@pytest.fixture
async def bot(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot in HTTP mode with a bot token, delivery driven by the test (`bot.drain()`)."""
    async with start_bot(dsn, fake_slack) as running_bot:
        yield running_bot


@pytest.fixture
async def local_bot(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with no Slack credentials (local mode: stdout and the feed page), its delivery worker running,
    and alerts allowed at any hour."""
    async with start_bot(dsn, fake_slack, background_worker=True, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None,
                         BUSINESS_HOURS="00:00-23:59") as running_bot:
        assert running_bot.deps.settings.local_mode and running_bot.deps.feed is not None
        yield running_bot
