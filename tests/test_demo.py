"""`salespulse demo`: Stripe-shaped, signed events from the simulator; settings forced into a local demo;
`run` with nothing configured becomes the demo; and the real command, run as a process, comes alive."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import random
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from pydantic import SecretStr

from bot.alerts.rules import DEFAULT_RULES, Context
from bot.cli.main import main
from bot.demo import runner as demo
from bot.demo.events import EventFactory, sign
from bot.demo.runner import ALL_DAY, OPENING, Simulator, demo_settings, nothing_configured, opening_report, steps
from bot.demo.subscription_history import history as subscription_history
from bot.demo.subscription_history import mrr_of
from bot.intake.events import Kind
from bot.reports.schedule import ReportKind
from bot.stripe.parse import parse_event
from bot.stripe.signature import verify
from bot.subscriptions.mrr import minor
from queries import demo as demo_queries
from queries import mrr
from queries import subscriptions as subscriptions_q
from tests.conftest import STRIPE_SECRET, Bot, make_settings

ROOT = Path(__file__).resolve().parents[1]


def test_events_parse_as_stripe_events_and_carry_valid_signatures() -> None:
    """Sales, declines and refunds parse as their kinds; a refund names an earlier sale; signatures verify."""
    factory = EventFactory(random.Random(1), run="t1")
    now = int(time.time())
    assert factory.refund(now) is None  # nothing sold yet
    sales = [factory.sale(now) for _ in range(20)]
    failure, refund = factory.failure(now), factory.refund(now)
    assert refund is not None
    parsed = [parse_event(e) for e in [*sales, failure, refund]]
    assert [p.kind if p else None for p in parsed] == [Kind.SALE] * 20 + [Kind.FAILURE, Kind.REFUND]
    sold = {p.payment_intent_id for p in parsed[:20] if p}
    assert parsed[-1] and parsed[-1].payment_intent_id in sold and parsed[-1].amount_refunded == parsed[-1].amount
    assert all(p and p.amount and p.currency and p.customer_email and p.product for p in parsed)
    ids = [e["id"] for e in [*sales, failure, refund]]
    assert len(set(ids)) == len(ids)
    body = json.dumps(sales[0]).encode()
    verify(body, sign(body, "whsec_x", timestamp=now), ["whsec_x"])


def test_the_opening_fires_an_alert_and_shows_a_burst_within_a_minute() -> None:
    """The scripted opening has sales, five declines (the rate rule's minimum), a refund and a burst, in < 60 s."""
    opening = list(itertools.islice(steps(random.Random(3)), len(OPENING)))
    assert opening == list(OPENING)
    assert sum(delay for delay, _ in opening) < 60
    kinds = [kind for _, kind in opening]
    assert kinds.count("failure") >= 5 and "refund" in kinds and "burst" in kinds
    assert kinds.index("sale") < kinds.index("refund")  # something to refund
    later = {kind for _, kind in itertools.islice(steps(random.Random(3)), len(OPENING), 2000)}
    assert later == {"sale", "subscription", "failure", "refund", "burst"}


async def test_simulator_events_go_through_the_real_intake(bot: Bot) -> None:
    """The opening, signed and POSTed, becomes orders, failed payments and a refunded order, and fires the failure
    rate warning (the rule the demo's store, which has a rhythm, alerts on)."""
    simulator = Simulator(url=str(bot.client.make_url("/webhooks/stripe")), secret=STRIPE_SECRET,
                          rng=random.Random(5))
    async with aiohttp.ClientSession() as session:
        for _, kind in OPENING:
            for event in simulator.make(kind):
                assert await simulator.send(session, event) == 200
    sales = simulator.sent["checkout.session.completed"]
    assert sales >= 4 + 8 and simulator.sent["payment_intent.payment_failed"] == 5
    assert simulator.sent["charge.refunded"] == 1
    pool = bot.deps.pool
    invoices = simulator.sent.get("invoice.paid", 0)  # the opening's new subscriber's first payment
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE payment_status = 'completed'") == \
        sales - 1 + invoices
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE payment_status = 'refunded'") == 1
    assert await pool.fetchval("SELECT count(*) FROM payment_failures") == 5
    rule = next(r for r in DEFAULT_RULES if r.name == "payment_failure_rate")
    ctx = Context(now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1), tz=bot.deps.settings.tz,
                  business_hours=ALL_DAY, site_url=None)
    assert rule.applies(None) and await rule.check(pool, rule, ctx)


async def test_simulated_subscriptions_move_mrr_and_post_their_changes(bot: Bot) -> None:
    """Forty subscription steps through the real intake: subscribers, MRR, and their kinds of ping queued."""
    simulator = Simulator(url=str(bot.client.make_url("/webhooks/stripe")), secret=STRIPE_SECRET,
                          rng=random.Random(15))
    async with aiohttp.ClientSession() as session:
        for _ in range(40):
            for event in simulator.make("subscription"):
                assert await simulator.send(session, event) == 200
    assert {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
            "invoice.paid"} <= set(simulator.sent)
    live = simulator.subscriptions.live
    expected = minor(sum(mrr_of(s.plan, s.quantity, s.currency, "active", dt.datetime.now(dt.UTC)) for s in live
                         if s.currency == "USD"))  # MRR units, summed, rounded once (migration 0046)
    got = await mrr.summary(bot.deps.pool, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
                            since=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert {c.currency: c.mrr for c in got.currencies}.get("USD", 0) == expected and got.active == len(live)
    rows = await bot.deps.pool.fetch("SELECT payload::text AS payload FROM outbox WHERE kind = 'subscription'")
    texts = [json.loads(r["payload"])["text"] for r in rows]
    assert {t.split(":")[0] for t in texts} >= {"🎉 New subscriber", "👋 Subscriber churned"}


async def test_the_demo_history_has_subscribers_upgrades_and_churn(pool: asyncpg.Pool) -> None:
    """The seeded 30 days: MRR at both ends of the week, new MRR, expansion or contraction, churn, trials."""
    now = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
    snapshots, states = subscription_history(now=now, seed=15, token="t15")
    await subscriptions_q.insert_snapshots(pool, snapshots)
    await subscriptions_q.upsert_states(pool, states)
    got = await mrr.summary(pool, now=now, since=now - dt.timedelta(days=30))
    usd = next(c for c in got.currencies if c.currency == "USD")
    assert usd.mrr > 0 and usd.mrr_week_ago > 0 and usd.new > 0 and usd.churned > 0
    assert usd.expansion + usd.contraction > 0 and got.trialing == 3
    assert usd.mrr == await pool.fetchval("SELECT mrr_minor(sum(mrr_units)) FROM subscriptions"
                                          " WHERE currency = 'USD'")


async def test_a_kept_demo_database_is_topped_up_for_the_time_it_was_off(dsn: str) -> None:
    """A second run on the database an earlier one left keeps everything and makes up only the hours since its
    history ended, at the history's pace: no sale after now, nothing seeded twice, the subscribers not again."""
    settings = make_settings(STORE_TIMEZONE="America/New_York")
    first_run = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    first = await demo.seed_history(dsn, settings, orders=1_500, now=first_run)
    assert (first.kept, first.added, first.orders) == (False, 1_500, 1_500)
    conn = await asyncpg.connect(dsn)
    try:
        ended = await conn.fetchval("SELECT max(created_at) FROM orders")
        counts = "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM subscription_events)"
        before = tuple(await conn.fetchrow(counts))
        second = await demo.seed_history(dsn, settings, orders=1_500, now=first_run + dt.timedelta(hours=12))
        assert second.kept and 15 <= second.added <= 35, second  # 1,500 a month is ~25 in 12 hours
        new = await conn.fetch("SELECT created_at FROM orders WHERE created_at > $1", ended)
        assert all(r["created_at"] <= first_run + dt.timedelta(hours=12) for r in new)
        assert tuple(await conn.fetchrow(counts))[1] == before[1]
        assert await conn.fetchval("SELECT count(*) FROM orders") >= before[0] + second.added
        assert second.orders == await conn.fetchval(
            "SELECT count(*) FROM orders WHERE payment_status IN ('completed', 'refunded') AND created_at >= $1",
            first_run + dt.timedelta(hours=12) - dt.timedelta(days=30))
        assert await demo_queries.history_ends(conn) == first_run + dt.timedelta(hours=12)  # its last order: before
        again = await demo.seed_history(dsn, settings, orders=1_500, now=first_run + dt.timedelta(hours=12))
        assert (again.kept, again.added) == (True, 0)  # nothing was off
    finally:
        await conn.close()


async def test_a_wrong_secret_is_refused_and_counted_as_not_sent(bot: Bot) -> None:
    """Signed with another secret, the intake answers 400 and the simulator says so instead of counting it."""
    simulator = Simulator(url=str(bot.client.make_url("/webhooks/stripe")), secret="whsec_other")
    async with aiohttp.ClientSession() as session:
        assert await simulator.send(session, simulator.make("sale")[0]) == 400
    assert simulator.sent == {}


def test_demo_settings_are_local_and_self_contained() -> None:
    """Slack, DATABASE_URL, the Stripe API key and the site probe are dropped; the secrets are made up."""
    real = make_settings(SLACK_BOT_TOKEN="xoxb-real", SLACK_SIGNING_SECRET="s", DATABASE_URL="postgresql://prod/db",
                         STRIPE_API_KEY="sk_live_x", SITE_URL="https://shop.example", STORE_TIMEZONE="Asia/Tokyo")
    assert not nothing_configured(real)
    settings = demo_settings(real, dsn="postgresql://postgres@/salespulse_demo?host=/tmp/x")
    assert settings.local_mode and settings.stripe_api_key is None and settings.site_url is None
    assert settings.database_url and settings.database_url.get_secret_value().endswith("salespulse_demo?host=/tmp/x")
    assert settings.stripe_secrets()[0].startswith("whsec_demo_") and settings.store_timezone == "Asia/Tokyo"
    assert settings.monitoring_token and len(settings.monitoring_token.get_secret_value()) >= 20
    assert settings.business_hours.contains(dt.time(3, 0)) and settings.store_currency == "USD"
    kept = demo_settings(make_settings(MONITORING_TOKEN="mine-and-long-enough-for-a-token"),
                         dsn="postgresql://x/y")
    assert kept.monitoring_token == SecretStr("mine-and-long-enough-for-a-token")


def test_the_opening_report_is_this_mornings_before_noon_and_this_evenings_after() -> None:
    """Before noon the morning report (yesterday in full) makes a better first report than an empty evening."""
    settings = make_settings(STORE_TIMEZONE="America/New_York")
    morning = opening_report(dt.datetime(2026, 3, 8, 14, 0, tzinfo=dt.UTC), settings)  # 10:00 in New York
    evening = opening_report(dt.datetime(2026, 3, 8, 20, 0, tzinfo=dt.UTC), settings)
    assert (morning.kind, morning.day) == (ReportKind.MORNING, dt.date(2026, 3, 8))
    assert (evening.kind, evening.day) == (ReportKind.EVENING, dt.date(2026, 3, 8))


def test_run_with_nothing_configured_is_the_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Plain `salespulse run` (so `make run`) out of the box demos; anything that names a real store — a Stripe
    secret or API key, an INTAKE_TOKEN, a site to probe — makes it the real thing."""
    import bot.app

    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("SLACK_BOT_TOKEN", "SLACK_SALES_WEBHOOK_URL", "SLACK_ALERT_WEBHOOK_URL", "DATABASE_URL",
                 "STRIPE_WEBHOOK_SECRET", "SLACK_APP_TOKEN", "STRIPE_API_KEY", "INTAKE_TOKEN", "SITE_URL"):
        monkeypatch.delenv(name, raising=False)
    calls: list[str] = []

    async def fake_demo(settings: Any, **_: Any) -> int:
        calls.append("demo")
        return 0

    async def fake_serve(settings: Any, **_: Any) -> None:
        calls.append("serve")

    monkeypatch.setattr(demo, "demo_command", fake_demo)
    monkeypatch.setattr(bot.app, "serve", fake_serve)
    assert main(["run"]) == 0 and calls == ["demo"]
    assert "nothing is configured" in capsys.readouterr().err
    real = [("STRIPE_WEBHOOK_SECRET", "whsec_mine"), ("STRIPE_API_KEY", "rk_live_mine"),
            ("INTAKE_TOKEN", "mine-and-long-enough-for-a-token"), ("SITE_URL", "https://shop.example")]
    for name, value in real:
        monkeypatch.setenv(name, value)
        assert main(["run"]) == 0 and main(["demo"]) == 0
        monkeypatch.delenv(name)
    assert calls == ["demo"] + ["serve", "demo"] * len(real)


def test_the_banner_prints_only_the_token_the_demo_made_up() -> None:
    """A MONITORING_TOKEN the user configured is a secret of theirs: the demo's banner does not print it."""
    now = dt.datetime(2026, 3, 8, 14, 0, tzinfo=dt.UTC)
    made_up = demo_settings(make_settings(), dsn="postgresql://x/y")
    assert made_up.monitoring_token is not None
    history = demo.History(orders=1, added=0, kept=False)
    shown = demo.banner(made_up, history=history, now=now)
    assert f"MONITORING_TOKEN={made_up.monitoring_token.get_secret_value()}" in shown
    own = demo_settings(make_settings(MONITORING_TOKEN="mine-and-secret-long-enough-token"),
                        dsn="postgresql://x/y")
    shown = demo.banner(own, history=history, now=now, own_token=True)
    assert "mine-and-secret-long-enough-token" not in shown and "Bearer $MONITORING_TOKEN" in shown
    assert "/dashboard/link/" in shown


def test_the_made_up_token_survives_a_restart(tmp_path: Path) -> None:
    """The demo's made-up MONITORING_TOKEN is kept in its data directory (owner-only), so a restart does not sign
    out the browsers it signed in: a new token would invalidate their session cookies."""
    first = demo.demo_token(tmp_path)
    again = demo.demo_token(tmp_path)
    assert first.get_secret_value() == again.get_secret_value() and len(first.get_secret_value()) >= 24
    assert (tmp_path / demo.DEMO_TOKEN_FILE).stat().st_mode & 0o077 == 0
    settings = demo_settings(make_settings(), dsn="postgresql://x/y", made_up=again)
    assert settings.monitoring_token == first
    (tmp_path / demo.DEMO_TOKEN_FILE).write_text("short\n")  # not a token this bot would accept: made anew
    assert len(demo.demo_token(tmp_path).get_secret_value()) >= 24


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(predicate: Any, *, output: Callable[[], str], within: float, what: str) -> Any:
    """Poll `predicate()` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.5)
    raise AssertionError(f"no {what} within {within} s; output:\n{output()[-4000:]}")


@contextlib.asynccontextmanager
async def demo_process(tmp_path: Path, *args: str, log_name: str = "demo.log") -> AsyncIterator[
        tuple[str, Callable[[], str]]]:
    """`python -m bot demo [args]` with nothing configured and its data in tmp_path/data: its base URL and its
    output so far; Ctrl-C on the way out, which must stop it cleanly."""
    port, log = free_port(), tmp_path / log_name
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT),
           "SALESPULSE_DATA_DIR": str(tmp_path / "data"), "HOST": "127.0.0.1", "PORT": str(port)}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "demo", *args, cwd=tmp_path,
                                                    env=env, stdout=out, stderr=out)

    def text() -> str:
        return log.read_text(errors="replace")

    try:
        yield f"http://127.0.0.1:{port}", text
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            raise
    assert code == 0, text()[-3000:]


async def test_salespulse_demo_comes_alive(tmp_path: Path) -> None:
    """`python -m bot demo` with nothing configured: it prints its URLs and token, pings sales, posts a report,
    and the monitoring API and the local feed show the store — /sales with today's pace, /sales settings the
    Settings view — then Ctrl-C stops it cleanly."""
    async with demo_process(tmp_path) as (base, text):
        token = (await wait_for(lambda: re.search(r"MONITORING_TOKEN=(\S+)", text()), output=text, within=120,
                                what="banner")).group(1)
        assert f"local feed  {base}/" in text() and f"{base}/dashboard/link/" in text()
        await wait_for(lambda: "[#sales] 💰 New Sale" in text(), output=text, within=30, what="sale ping")
        await wait_for(lambda: re.search(r"\[#reports\] .*(Morning|Evening) report", text()), output=text, within=30,
                       what="report")
        async with aiohttp.ClientSession() as session:
            async def api() -> dict[str, Any] | None:
                async with session.get(f"{base}/api/monitoring/sales",
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 200
                    body: dict[str, Any] = await resp.json()
                    return body if body["lastHour"]["order_count"] >= 1 else None

            sales = await wait_for(api, output=text, within=30, what="sales in the API")
            assert sales["today"]["order_count"] >= 1 and sales["hourlySales"]
            assert sales["today"]["store_currency"] == "USD" and sales["today"]["currency"] == "USD"
            settings_form = 'data-callback-id="salespulse_settings"'
            for line, shown in (("/sales", "On pace for"), ("/sales settings", settings_form)):
                async with session.post(f"{base}/feed/command", json={"line": line, "channel": "sales"}) as resp:
                    answered = await resp.json()
                    assert shown in (answered.get("html") or answered.get("modal") or ""), (line, answered)
            async with session.get(f"{base}/feed/events") as stream:
                assert stream.status == 200
                first = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
                while b"data: " not in first:
                    first = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
                assert json.loads(first.split(b"data: ", 1)[1])["channel"] in ("sales", "alerts", "reports")


async def test_the_demo_keeps_its_store_between_runs(tmp_path: Path) -> None:
    """Like any embedded data, the demo's database survives a restart — its history and live sales, and so whatever
    was changed from the feed — topped up for the time it was off; `--fresh` starts over."""
    history = re.compile(r"history +([\d,]+) orders over the last 30 days \(database salespulse_demo, (new|kept)")

    async def banner(text: Callable[[], str]) -> tuple[int, str]:
        found = await wait_for(lambda: history.search(text()), output=text, within=120, what="banner")
        return int(found.group(1).replace(",", "")), found.group(2)

    async with demo_process(tmp_path, log_name="first.log") as (_, text):
        orders, how = await banner(text)
        assert how == "new" and orders == demo.HISTORY_ORDERS
        await wait_for(lambda: "[#sales] 💰 New Sale" in text(), output=text, within=30, what="sale ping")
    async with demo_process(tmp_path, log_name="second.log") as (_, text):
        kept, how = await banner(text)
        assert how == "kept" and kept > orders, text()  # the first run's history, its live sales, and the gap's
        assert "--fresh" in text()
    async with demo_process(tmp_path, "--fresh", log_name="third.log") as (_, text):
        assert await banner(text) == (demo.HISTORY_ORDERS, "new")
