"""The salespulse command line: migrate, check, and the clear failure paths."""

from __future__ import annotations

import socket

import asyncpg
import pytest

from bot.cli.main import main
from tests.conftest import STRIPE_SECRET
from tests.fakes import FakeSlack
from tests.test_replicas import free_port


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Run each CLI test in an empty directory with no Slack settings from the machine."""
    monkeypatch.chdir(str(tmp_path))
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


async def test_migrate_applies_then_reports_up_to_date(server_dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse migrate` creates the schema once; a second run has nothing to do."""
    from tests.conftest import with_database

    admin = await asyncpg.connect(server_dsn)
    await admin.execute('DROP DATABASE IF EXISTS "salespulse_cli_migrate"')
    await admin.execute('CREATE DATABASE "salespulse_cli_migrate"')
    try:
        monkeypatch.setenv("DATABASE_URL", with_database(server_dsn, "salespulse_cli_migrate"))
        import asyncio

        assert await asyncio.to_thread(main, ["migrate"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("applied ") and "0001_initial" in out
        assert await asyncio.to_thread(main, ["migrate"]) == 0
        assert "schema is up to date" in capsys.readouterr().out
    finally:
        await admin.execute('DROP DATABASE IF EXISTS "salespulse_cli_migrate" WITH (FORCE)')
        await admin.close()


async def test_check_passes_with_reachable_postgres_and_slack(dsn: str, fake_slack: FakeSlack,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse check` verifies auth.test against Slack, names each channel's standing and exits 0."""
    import asyncio

    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("SLACK_API_URL", fake_slack.url)
    assert await asyncio.to_thread(main, ["check"]) == 0
    out = capsys.readouterr().out
    assert "postgres:         ok" in out and "slack:            ok (team Test Store" in out
    assert "channel sales:    note — #sales-notifications is public, not joined: will join at start-up" in out
    assert [c.method for c in fake_slack.calls] == ["auth.test", "conversations.list"]  # it joins nothing


async def test_check_lists_the_settings_saved_from_slack(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """What an admin saved in the Settings view is printed beside the environment's values, saying it wins."""
    import asyncio
    import datetime as dt

    from bot.db import init_connection
    from queries import settings as settings_q

    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        await settings_q.put(conn, key="business_hours", value="08:00-20:00", user_id="UADMIN1",
                             at=dt.datetime(2026, 12, 5, 7, 0, tzinfo=dt.UTC))
    finally:
        await conn.close()
    monkeypatch.setenv("DATABASE_URL", dsn)
    assert await asyncio.to_thread(main, ["check"]) == 0
    out = capsys.readouterr().out
    assert "business hours 09:00-21:00" in out  # the environment's default, as before
    assert ('set from Slack:   business_hours = "08:00-20:00" (by UADMIN1, 2026-12-05 07:00 UTC)'
            " — wins over the environment") in out


async def test_check_fails_clearly_when_slack_rejects_the_token(dsn: str, fake_slack: FakeSlack,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid_auth answer from auth.test makes `check` print the reason and exit 1."""
    import asyncio

    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-revoked")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("SLACK_API_URL", fake_slack.url)
    fake_slack.fail_next(1, error="invalid_auth")
    assert await asyncio.to_thread(main, ["check"]) == 1
    assert "FAILED — auth.test: invalid_auth" in capsys.readouterr().out


def test_check_fails_when_postgres_is_unreachable(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A DATABASE_URL nobody answers makes `check` exit 1 naming postgres."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    assert main(["check"]) == 1
    assert "postgres:         FAILED" in capsys.readouterr().out


def test_invalid_setting_stops_startup_with_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed variable makes every command exit 1 with one line naming it on stderr."""
    monkeypatch.setenv("STORE_TIMEZONE", "Nowhere/City")
    assert main(["run"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "salespulse: invalid setting STORE_TIMEZONE: unknown IANA time zone 'Nowhere/City'"


@pytest.mark.parametrize(("version", "warned"), [("2024-09-30.acacia", False), ("2025-03-31.basil", True),
                                                 ("2025-09-30.clover", True), ("2026-03-25.dahlia", True),
                                                 ("2026-09-30.endive", True)])
def test_check_warns_an_endpoint_from_basil_on_that_lacks_invoice_payment_paid(version: str, warned: bool) -> None:
    """From basil on a subscription payment is tied to its invoice only by invoice_payment.paid: `check` says so for
    every later version too (dahlia's date sorts after basil's), and not for acacia, whose PaymentIntents name it."""
    from bot.stripe import endpoints
    from bot.stripe.parse import HANDLED_TYPES

    review = endpoints.review({"url": "https://shop.example/webhooks/stripe", "status": "enabled",
                               "api_version": version,
                               "enabled_events": sorted(HANDLED_TYPES - {"invoice_payment.paid"})})
    assert review.missing == ("invoice_payment.paid",)
    assert any("on basil and later" in line for line in review.lines) is warned


async def test_check_reads_the_stripe_webhook_endpoints(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """With STRIPE_API_KEY and webhooks in use (STRIPE_WEBHOOK_SECRET), `check` lists each endpoint's version and
    the event types it lacks; exit 1 when the only enabled endpoint misses some, 0 once one has them all ("*")."""
    import asyncio

    from tests.fake_stripe import API_KEY, FakeStripe

    stripe = await FakeStripe().start()
    try:
        stripe.endpoints.append({"id": "we_1", "object": "webhook_endpoint", "created": 1_700_000_000,
                                 "url": "https://shop.example/webhooks/stripe", "status": "enabled",
                                 "api_version": "2025-09-30.clover",
                                 "enabled_events": ["checkout.session.completed", "payment_intent.succeeded"]})
        for name, value in (("DATABASE_URL", dsn), ("STRIPE_API_KEY", API_KEY), ("STRIPE_API_URL", stripe.url),
                            ("PUBLIC_URL", "https://shop.example"), ("STRIPE_WEBHOOK_SECRET", "whsec_test")):
            monkeypatch.setenv(name, value)
        assert await asyncio.to_thread(main, ["check"]) == 1
        out = capsys.readouterr().out
        assert "pinned to 2025-09-30.clover" in out and "not subscribed to" in out and "charge.refunded" in out
        stripe.endpoints[0]["enabled_events"] = ["*"]
        assert await asyncio.to_thread(main, ["check"]) == 0
        assert "stripe webhooks:  ok" in capsys.readouterr().out
        assert {r.method for r in stripe.requests} == {"GET"}
    finally:
        await stripe.stop()


async def test_check_names_the_http_status_when_slack_answers_an_html_page(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A proxy's 502 page in front of Slack has no "error" to print: `check` names the HTTP status, not None."""
    import asyncio

    from aiohttp import web

    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bad_gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        for name, value in (("DATABASE_URL", dsn), ("SLACK_BOT_TOKEN", "xoxb-test"), ("SLACK_SIGNING_SECRET", "s"),
                            ("SLACK_API_URL", f"http://127.0.0.1:{port}/api/")):
            monkeypatch.setenv(name, value)
        assert await asyncio.to_thread(main, ["check"]) == 1
    finally:
        await runner.cleanup()
    out = capsys.readouterr().out
    assert "slack:            FAILED — auth.test: HTTP 502" in out and "None" not in out, out


@pytest.mark.parametrize(("which", "day"), [("morning", "0001-01-01"), ("evening", "9999-12-31"),
                                            ("morning", "0003-01-02"), ("evening", "9997-12-30")])
async def test_a_report_day_at_the_calendar_edge_is_refused_in_one_line(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str],
                                                                        which: str, day: str) -> None:
    """`report --date` for a day too near year 1 or 9999 (the report reaches back weeks) is a --date error, exit 2,
    not an OverflowError; the first day far enough in still renders."""
    import asyncio

    monkeypatch.setenv("DATABASE_URL", dsn)
    assert await asyncio.to_thread(main, ["report", which, "--date", day, "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == f"salespulse report: --date must be YYYY-MM-DD, got '{day}'"
    inside = "0003-01-03" if day.startswith("000") else "9997-12-29"
    assert await asyncio.to_thread(main, ["report", which, "--date", inside, "--dry-run"]) == 0


def test_run_on_a_port_in_use_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse run` when PORT is taken (another dev server on 3000): one line naming the address, exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for name, value in (("HOST", "127.0.0.1"), ("PORT", str(port)), ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
                            ("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/none")):
            monkeypatch.setenv(name, value)
        assert main(["run"]) == 1
    assert capsys.readouterr().err.strip() == (f"salespulse run: cannot listen on 127.0.0.1:{port} — address already"
                                               " in use; set PORT or HOST")


@pytest.mark.parametrize("command", [["migrate"], ["check"], ["report", "evening", "--dry-run"]])
def test_a_database_url_port_out_of_range_stops_every_command_in_one_line(
        command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """DATABASE_URL with port 99999 is refused before connecting, naming the variable, not an OverflowError."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:99999/postgres")
    assert main(command) == 1
    assert capsys.readouterr().err.strip() == ("salespulse: invalid setting DATABASE_URL: a port in the URI is"
                                               " outside 1-65535")
