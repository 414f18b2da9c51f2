"""Bench plumbing shared by the benchmarks: a scratch database (seeded by `python -m bot seed` if wanted), the
bot as a child process, a fake Slack that notes when each message arrived, Stripe events to send, EXPLAIN
summaries, and the statistics and table printing.

Importing this module needs the repository root on sys.path (the bench scripts put it there).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import math
import os
import platform
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from tests.fakes import FakeSlack, stripe_signature
from tests.reference import stripe_fixture

ROOT = Path(__file__).resolve().parents[1]
# Where reports and logs go, and what scratch database names end with: a test run of the benches
# (tests/test_bench_scripts.py) sets both, so it neither writes into the checkout nor drops the databases of a
# bench running beside it on the same server.
RESULTS = Path(os.environ.get("SALESPULSE_BENCH_RESULTS") or ROOT / "bench" / "results")
DB_SUFFIX = os.environ.get("SALESPULSE_BENCH_DB_SUFFIX", "")
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
STRIPE_SECRET = "whsec_bench"


def dsn_for(admin_dsn: str, database: str) -> str:
    """The admin DSN pointed at another database on the same server."""
    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextlib.asynccontextmanager
async def scratch_database(admin_dsn: str, name: str, *, keep: bool = False) -> AsyncIterator[str]:
    """Create database `name` (dropping a leftover), yield its DSN, drop it on the way out unless `keep`.
    `name` ends with $SALESPULSE_BENCH_DB_SUFFIX when that is set."""
    name += DB_SUFFIX
    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield dsn_for(admin_dsn, name)
    finally:
        if not keep:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def listening_pid(port: int) -> int:
    """The process listening on 127.0.0.1:port (a bot or the ceiling)."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return int(conn.pid)
    raise RuntimeError(f"nothing listens on port {port}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TimedSlack(FakeSlack):
    """FakeSlack that also records, per answered `ts`, when the chat.postMessage arrived and its text."""

    received: dict[str, float] = field(default_factory=dict)  # ts → time.monotonic()
    texts: dict[str, str] = field(default_factory=dict)  # ts → text

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        answer = super()._answer(method, args)
        if method == "chat.postMessage" and answer.get("ok"):
            self.received[answer["ts"]] = time.monotonic()
            self.texts[answer["ts"]] = str(args.get("text", ""))
        return answer


def bot_env(*, database_url: str, port: int, slack_api_url: str, **extra: str) -> dict[str, str]:
    """A clean environment for `python -m bot run` (nothing inherited but PATH, HOME and locale)."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "PORT": str(port),
            "HOST": "127.0.0.1", "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": "x", "SLACK_API_URL": slack_api_url, **extra}


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str], *, log_path: Path, argv: Sequence[str] | None = None,
                      startup_timeout: float = 60.0) -> AsyncIterator[str]:
    """Start the bot (`python -m bot run` unless `argv` says otherwise), wait for /healthz = 200, yield
    its base URL; SIGTERM it on the way out. Its output goes to `log_path`."""
    base = f"http://127.0.0.1:{env['PORT']}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *(argv or [sys.executable, "-m", "bot", "run"]), cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            await _wait_healthy(base, proc, startup_timeout)
            yield base
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _wait_healthy(base: str, proc: asyncio.subprocess.Process, within: float) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"the bot exited with {proc.returncode} before it was healthy")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{base}/healthz was not 200 within {within:.0f} s")


async def seed(env: dict[str, str], orders: int, days: int, log: Path, *, subscriptions: int = 0) -> str:
    """`python -m bot seed` in `env` (its progress lines go to `log`); its summary line."""
    more = ("--subscriptions", str(subscriptions)) if subscriptions else ()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "seed", "--orders", str(orders), "--days", str(days), *more,
            cwd=env["PYTHONPATH"], env=env, stdout=asyncio.subprocess.PIPE, stderr=err)
        out, _ = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"seed exited with {proc.returncode}; see {log}")
    return out.decode().strip().splitlines()[-1]


async def explain(dsn: str, sql: str, args: tuple[Any, ...] = ()) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) as one line per plan node: type, index, time, rows, buffers."""
    conn = await asyncpg.connect(dsn)
    try:
        plan = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
    finally:
        await conn.close()
    root = json.loads(plan)[0]
    lines = [f"execution {root['Execution Time']:.1f} ms, planning {root['Planning Time']:.1f} ms"]

    def walk(node: dict[str, Any], depth: int) -> None:
        what = node["Node Type"] + (f" using {node['Index Name']}" if "Index Name" in node else "") \
            + (f" on {node['Relation Name']}" if "Relation Name" in node and "Index Name" not in node else "")
        loops = node.get("Actual Loops", 1)
        extra = f", heap fetches {node['Heap Fetches']}" if "Heap Fetches" in node else ""
        lines.append(f"{'  ' * depth}{what}: {node['Actual Total Time']:.1f} ms, rows {node['Actual Rows']:,}"
                     f"{f' ×{loops} loops' if loops > 1 else ''}, buffers hit {node.get('Shared Hit Blocks', 0):,}"
                     f" read {node.get('Shared Read Blocks', 0):,}{extra}")
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(root["Plan"], 0)
    return lines


@dataclass(frozen=True, slots=True)
class Sale:
    """One signed-ready event of a sale (checkout.session.completed unless said) and what identifies the sale."""

    event_id: str
    order_id: str  # the payment_intent id: the order's id, and the outbox key is "sale:" + it
    amount: int
    body: bytes


@functools.cache
def _reference(event_type: str) -> dict[str, Any]:
    """The stripe-ruby-mock reference event of this type, read once (callers deep-copy it)."""
    return stripe_fixture(f"stripe-ruby-mock/{event_type}.json")


def checkout_completed(tag: str, i: int, *, created: int | None = None) -> Sale:
    """The reference checkout.session.completed event with its own event, session and PaymentIntent ids."""
    event = copy.deepcopy(_reference("checkout.session.completed"))
    created = int(time.time()) if created is None else created
    amount = 1000 + (i * 37) % 9000
    event.update(id=f"evt_{tag}_{i:07d}", created=created)
    event["data"]["object"].update(
        id=f"cs_test_{tag}_{i:07d}", payment_intent=f"pi_{tag}_{i:07d}", amount_total=amount,
        amount_subtotal=amount, created=created, metadata={"productName": "Bench plan"})
    # Stripe sends pretty-printed JSON; the body size matters to parsing and jsonb costs.
    body = json.dumps(event, indent=2).encode()
    return Sale(event["id"], f"pi_{tag}_{i:07d}", amount, body)


def _payment_event(kind: str, tag: str, i: int, created: int) -> Sale:
    """The reference payment_intent.succeeded or charge.succeeded of sale i (checkout_completed's ids)."""
    event = copy.deepcopy(_reference(kind))
    amount, intent, charge = 1000 + (i * 37) % 9000, f"pi_{tag}_{i:07d}", f"ch_{tag}_{i:07d}"
    event.update(id=f"evt_{kind[:2]}_{tag}_{i:07d}", created=created)
    obj = event["data"]["object"]
    if kind == "payment_intent.succeeded":
        obj.update(id=intent, amount=amount, amount_received=amount, created=created)
        obj["charges"]["data"][0].update(id=charge, payment_intent=intent, amount=amount, created=created)
    else:
        obj.update(id=charge, payment_intent=intent, amount=amount, amount_captured=amount, created=created)
    return Sale(event["id"], intent, amount, json.dumps(event, indent=2).encode())


def payment_events(tag: str, first: int, sales: int, *, spread: int = 100) -> list[Sale]:
    """Each of `sales` sales as Stripe tells it: checkout.session.completed, payment_intent.succeeded and
    charge.succeeded, which of them first turning with the sale, each sale's three about `spread` sales apart — so
    most arrive in different batches and update the order the first one stored."""
    created = int(time.time())
    per_sale = [[checkout_completed(tag, i, created=created),
                 _payment_event("payment_intent.succeeded", tag, i, created + 1),
                 _payment_event("charge.succeeded", tag, i, created + 1)] for i in range(first, first + sales)]
    for n, events in enumerate(per_sale):
        events[:] = events[n % 3:] + events[:n % 3]
    return [per_sale[step - k * spread][k] for step in range(sales + 2 * spread) for k in range(3)
            if 0 <= step - k * spread < sales]


def stripe_headers(body: bytes) -> dict[str, str]:
    """Headers of a webhook delivery signed now with the bench's endpoint secret."""
    return {"Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": stripe_signature(body, STRIPE_SECRET)}


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank p-th percentile (0 < p ≤ 100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


async def machine_info(dsn: str) -> dict[str, str]:
    """What the figures were measured on."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {"cpus (os.cpu_count())": str(os.cpu_count()), "PostgreSQL": str(version),
            "Python": platform.python_version(), "platform": platform.platform(terse=True)}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, text: str) -> Path:
    """Save a report under bench/results/ (git-ignored), or $SALESPULSE_BENCH_RESULTS."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text + "\n", encoding="utf-8")
    return path
