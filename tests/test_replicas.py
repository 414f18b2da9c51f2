"""Several `salespulse run` processes on one database, and a Slack that is slow: exactly once still holds."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import SLACK_SIGNING_SECRET, STRIPE_SECRET, start_bot
from tests.fakes import FakeSlack, Fault, stripe_signature
from tests.reference import stripe_fixture

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    """One `python -m bot run` process."""

    proc: asyncio.subprocess.Process
    url: str
    log: Path

    async def stripe(self, session: aiohttp.ClientSession, body: bytes) -> tuple[int, Any]:
        """POST a Stripe event to it, signed as Stripe signs it; (status, the answer's JSON)."""
        signed = {"Stripe-Signature": stripe_signature(body, STRIPE_SECRET)}
        async with session.post(f"{self.url}/webhooks/stripe", data=body, headers=signed) as resp:
            return resp.status, await resp.json()

    def is_leader(self) -> bool:
        """Whether its log says it took the alert leadership."""
        return "now evaluates alerts (leader)" in self.log.read_text(errors="replace")


async def start_replica(dsn: str, slack: FakeSlack, folder: Path, n: int, **extra: str) -> Replica:
    """Start one replica (`extra`: more environment) and wait for its /healthz."""
    port, log = free_port(), folder / f"replica-{n}.log"
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    morning, evening = sorted(f"{soon + dt.timedelta(minutes=m):%H:%M}" for m in (0, 1))  # morning comes first
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT),
           "DATABASE_URL": dsn, "HOST": "127.0.0.1", "PORT": str(port), "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
           "SLACK_BOT_TOKEN": "xoxb-replica", "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
           "SLACK_API_URL": slack.url, "ALERT_CHECK_INTERVAL_SECONDS": "1", "BUSINESS_HOURS": "00:00-23:59",
           # Daily reports due in 2 h: none falls due (and gets posted at start-up, late) while the test counts.
           "MORNING_REPORT_AT": morning, "EVENING_REPORT_AT": evening, **extra}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", cwd=folder, env=env,
                                                    stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return Replica(proc, url, log)
            await asyncio.sleep(0.1)
    raise AssertionError(f"replica {n} did not start: {log.read_text()[-2000:]}")


@pytest.fixture
async def replicas(dsn: str, fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[list[Replica]]:
    """Three replicas sharing one database and one (fake) Slack."""
    started = [await start_replica(dsn, fake_slack, tmp_path, n) for n in range(3)]
    try:
        yield started
    finally:
        for r in started:
            if r.proc.returncode is None:
                r.proc.send_signal(signal.SIGTERM)
        for r in started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(r.proc.wait(), 20)
            if r.proc.returncode is None:
                r.proc.kill()


def sale(n: int) -> bytes:
    """A signed-to-be checkout event for payment n."""
    evt = stripe_fixture("stripe-ruby-mock/checkout.session.completed.json")
    evt.update(id=f"evt_r{n}", created=int(time.time()))
    evt["data"]["object"].update(id=f"cs_r{n}", payment_intent=f"pi_r{n}", amount_total=1000 + n)
    return json.dumps(evt).encode()


def covered(slack: FakeSlack) -> int:
    """Sales covered by the messages in the sales channel (single pings + summary counts)."""
    total = 0
    for m in slack.messages:
        if m["channel_id"] == "C0SALES":  # #sales-notifications
            text = m["text"] or ""
            total += 1 if "New Sale" in text else int(text.split(" new sales")[0].split()[-1])
    return total


async def eventually(check: Any, *, within: float) -> None:
    """Poll `check()` until true."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def test_three_replicas_ping_once_evaluate_once_and_survive_a_killed_leader(
        replicas: list[Replica], fake_slack: FakeSlack, dsn: str) -> None:
    """Round-robin webhooks: each sale pinged once; one alert from three evaluators; SIGKILL the leader →
    another replica takes over within a few intervals."""
    import asyncpg

    async with aiohttp.ClientSession() as session:
        for n in range(150):
            status, _ = await replicas[n % 3].stripe(session, sale(n))
            assert status == 200
    db = await asyncpg.connect(dsn)
    try:
        async def drained() -> bool:
            return not await db.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")

        await eventually(drained, within=30)
        assert covered(fake_slack) == 150  # every sale in exactly one message, across three workers
        await db.execute("INSERT INTO payment_failures (event_id, reason, created_at)"
                         " SELECT 'evt_pf' || g, 'card_declined', now() - interval '1 minute'"
                         "   FROM generate_series(1, 3) AS g")

        def alert_posts(title: str) -> int:
            return sum(1 for m in fake_slack.messages if title in (m["text"] or "") and not m["thread_ts"])

        async def warned() -> bool:
            return alert_posts("WARNING · Payment failures") >= 1

        await eventually(warned, within=15)
        await asyncio.sleep(3)  # three evaluators, three more intervals: still one message
        assert alert_posts("WARNING · Payment failures") == 1
        leaders = [r for r in replicas if r.is_leader()]
        assert len(leaders) == 1
        leaders[0].proc.send_signal(signal.SIGKILL)
        await leaders[0].proc.wait()
        await db.execute("INSERT INTO app_events (kind, system, message, occurred_at)"
                         " VALUES ('sync_failure', 'crm', 'down', now() - interval '1 minute')")

        async def taken_over() -> bool:
            return alert_posts("WARNING · Sync failures") == 1

        await eventually(taken_over, within=15)
        assert sum(r.is_leader() for r in replicas if r is not leaders[0]) == 1
    finally:
        await db.close()


async def test_replica_killed_mid_delivery_loses_and_doubles_nothing(dsn: str, fake_slack: FakeSlack,
                                                                     tmp_path: Path) -> None:
    """Slack takes a post but every replica is SIGKILLed before the answer: a new replica finds it, no repost."""
    first = await start_replica(dsn, fake_slack, tmp_path, 0)
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(2):
                if n == 1:
                    fake_slack.fail_next(1, accept=True, delay=10)  # taken, answer lost
                status, _ = await first.stripe(session, sale(n))
                assert status == 200
                for _ in range(100):
                    if len(fake_slack.messages) == n + 1:
                        break
                    await asyncio.sleep(0.05)
                if n == 0:
                    await asyncio.sleep(1.1)  # the channel's pace
        assert len(fake_slack.messages) == 2
    finally:
        first.proc.send_signal(signal.SIGKILL)
        await first.proc.wait()
    second = await start_replica(dsn, fake_slack, tmp_path, 1)
    try:
        import asyncpg

        db = await asyncpg.connect(dsn)
        try:
            async def delivered() -> bool:
                return not await db.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")

            await eventually(delivered, within=20)
        finally:
            await db.close()
    finally:
        second.proc.send_signal(signal.SIGTERM)
        await second.proc.wait()
    assert len(fake_slack.messages) == 2 and covered(fake_slack) == 2


async def test_slow_slack_never_delays_webhooks_or_command_acks(dsn: str, fake_slack: FakeSlack) -> None:
    """Slack answering after 10 s: webhooks still answer at once and /sales acks inside 3 s."""
    async with start_bot(dsn, fake_slack, background_worker=True) as bot:
        fake_slack.chaos = lambda method: Fault(200, delay=10, accept=True)
        latencies = []
        for n in range(5):
            started = time.perf_counter()
            resp = await bot.stripe(json.loads(sale(100 + n)))
            latencies.append(time.perf_counter() - started)
            assert resp.status == 200
            await asyncio.sleep(0.3)
        started = time.perf_counter()
        body = await bot.command("/sales")
        command_latency = time.perf_counter() - started
        fake_slack.chaos = None
        assert max(latencies) < 1.0, latencies
        assert command_latency < 3.0 and "Sales" in body["text"]
