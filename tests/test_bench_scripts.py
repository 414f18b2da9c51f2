"""The README's reproduction commands still run: each bench script, at a tiny size, against the test server.

Two of them had stopped running unnoticed (bench/parse.py after load_json moved; bench/mrr.py after migration 0017
added columns to its COPY's table). The figures at these sizes mean nothing; that the script gets to them, and
that its own checks pass, does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench import parse
from bot.stripe.parse import HANDLED_TYPES, parse_event
from bot.stripe.received import load_json
from tests.processes import run_to_completion

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def results(tmp_path: Path) -> Path:
    """Where the benches write their reports here: not the checkout's bench/results/."""
    return tmp_path / "results"


def run_bench(script: str, *args: str, results: Path) -> str:
    """Run `python bench/<script>` from the repository root, its reports going to `results` and its scratch
    databases named apart from a bench running beside the tests; its stdout and stderr, once it exits 0."""
    env = {**os.environ, "SALESPULSE_BENCH_RESULTS": str(results), "SALESPULSE_BENCH_DB_SUFFIX": f"_t{os.getpid()}"}
    done = run_to_completion(sys.executable, f"bench/{script}", *args, cwd=ROOT, timeout=300, env=env)
    return done.stdout + done.stderr


def test_parse_bench_has_a_reference_payload_for_every_handled_type() -> None:
    assert set(parse.SOURCES) == HANDLED_TYPES
    for event_type in sorted(HANDLED_TYPES):
        event = parse_event(load_json(parse.reference_body(event_type).decode()))
        assert event is not None, event_type


def test_mrr_bench_runs_and_agrees_with_a_full_scan(server_dsn: str, results: Path) -> None:
    # The script asserts its summary's MRR a week ago equals a scan of every snapshot.
    out = run_bench("mrr.py", "--subscriptions", "200", "--runs", "1", "--writes", "100", "--admin-url", server_dsn,
                    results=results)
    assert "snapshots of 200 subscriptions: summary median" in out
    assert "storing 100 snapshots in batches of 50:" in out


def test_currency_bench_runs(server_dsn: str, results: Path) -> None:
    out = run_bench("currency.py", "--orders", "2000", "--runs", "1", "--admin-url", server_dsn, results=results)
    assert "| 30d |" in out


def test_apply_bench_runs(server_dsn: str, results: Path) -> None:
    out = run_bench("apply.py", "--batches", "11", "--batch-size", "5", "--database-url", server_dsn, results=results)
    assert "total, at the client" in out
    assert "WITH new_orders AS" in out  # the common batch's one write was timed


def test_apply_bench_runs_each_sales_three_events(server_dsn: str, results: Path) -> None:
    out = run_bench("apply.py", "--batches", "14", "--batch-size", "30", "--payment-events", "--database-url",
                    server_dsn, results=results)
    assert "UPDATE orders AS o" in out  # later events of a sale found its order and changed it
    assert "could not be applied" not in out


def test_intake_bench_with_each_sales_three_events_passes_its_checks(server_dsn: str, results: Path) -> None:
    out = run_bench("intake.py", "--rounds", "1", "--events", "60", "--payment-events", "--ping-seconds", "0",
                    "--open-loop-rate", "0", "--database-url", server_dsn, results=results)
    checks = [line for line in out.splitlines() if line.startswith("| check:")]
    assert any("orders == sales sent" in line for line in checks)
    assert all("✅" in line for line in checks), "\n".join(checks)


def test_commands_bench_runs(server_dsn: str, results: Path) -> None:
    out = run_bench("commands.py", "--orders", "2000", "--subscriptions", "50", "--requests", "5",
                    "--period-requests", "2", "--guide-seconds", "1", "--admin-url", server_dsn, results=results)
    rows = {cells[0]: cells for line in out.splitlines() if line.startswith("| /sales")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert {"/sales today, sequential", "/sales 7d", "/sales 30d", "/sales yesterday"} <= set(rows)
    assert all(cells[5] == "0" for cells in rows.values()), rows  # no request failed
    assert "| subscriptions |" in out  # the MRR lookup, timed with its other statements
    assert (results / "commands.md").read_text("utf-8").startswith("# /sales end to end")


def test_intake_bench_runs_and_its_exactly_once_checks_pass(server_dsn: str, results: Path) -> None:
    out = run_bench("intake.py", "--rounds", "1", "--events", "30", "--ping-seconds", "0", "--open-loop-rate", "0",
                    "--database-url", server_dsn, results=results)
    checks = [line for line in out.splitlines() if line.startswith("| check:")]
    assert len(checks) >= 6
    assert all("✅" in line for line in checks), "\n".join(checks)
