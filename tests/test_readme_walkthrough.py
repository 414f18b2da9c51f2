"""The README followed literally on a fresh clone (found by a review): `salespulse check` on a polling-only install
and with the restricted key the README lists, and a Unix-socket DATABASE_URL whose server is down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.cli.main import main
from tests.fake_stripe import API_KEY, FakeStripe


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Run each CLI test in an empty directory with no Slack or Stripe settings from the machine."""
    monkeypatch.chdir(str(tmp_path))
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL",
                 "STRIPE_WEBHOOK_SECRET", "PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)


async def test_check_passes_a_polling_only_install(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """README (Events API): "Without STRIPE_WEBHOOK_SECRET polling alone runs the product". Such an install has
    no webhook endpoint on purpose, so `check` has nothing to fault there and exits 0."""
    async with FakeStripe() as stripe:
        for name, value in (("DATABASE_URL", dsn), ("STRIPE_API_KEY", API_KEY), ("STRIPE_API_URL", stripe.url)):
            monkeypatch.setenv(name, value)
        status = await asyncio.to_thread(main, ["check"])
        out = capsys.readouterr().out
        assert status == 0 and "stripe webhooks:  note (polling only)" in out, out


async def test_check_passes_with_the_restricted_key_the_readme_lists(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The README lists the restricted key's permissions (Events, Checkout Sessions, PaymentIntents, Invoices,
    Subscriptions, Charges, Disputes, Balance, Account, Refunds, Coupons: read) and never Webhook Endpoints. With
    exactly that key and a webhook endpoint subscribed to everything, `check` must not fail."""
    async with FakeStripe(forbidden={"/v1/webhook_endpoints"}) as stripe:
        stripe.endpoints.append({"id": "we_1", "object": "webhook_endpoint", "created": 1_700_000_000,
                                 "url": "https://shop.example/webhooks/stripe", "status": "enabled",
                                 "api_version": "2025-09-30.clover", "enabled_events": ["*"]})
        for name, value in (("DATABASE_URL", dsn), ("STRIPE_API_KEY", API_KEY), ("STRIPE_API_URL", stripe.url),
                            ("STRIPE_WEBHOOK_SECRET", "whsec_test")):
            monkeypatch.setenv(name, value)
        status = await asyncio.to_thread(main, ["check"])
        out = capsys.readouterr().out
        assert status == 0 and "needs Webhook Endpoints: read" in out, out  # the permission that was missing



@pytest.mark.parametrize("command", [["migrate"], ["report", "morning", "--dry-run"]])
def test_a_down_server_behind_a_unix_socket_is_one_line(command: list[str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """README: "a refused role, password or database, or no server ... one line saying why (exit 1), as migrate,
    seed and report say it at once". PostgreSQL stopped leaves no socket file in its directory: that is "no server"
    too, and must not end in a traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@/postgres?host={tmp_path}")  # no .s.PGSQL.5432 here
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "cannot use PostgreSQL" in err and len(err.strip().splitlines()) == 1, err
