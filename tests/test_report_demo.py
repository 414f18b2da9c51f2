"""`salespulse report` after `make run`: with nothing configured `run` is the demo, whose store is in a database of
its own (salespulse_demo) in the embedded PostgreSQL, so `report` reports on that store too — and says so — rather
than on the embedded server's empty default database ("no schema yet; run `salespulse migrate`")."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.report import report_command
from bot.config import load_settings
from bot.demo import runner as demo

CONFIGURING = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_SALES_WEBHOOK_URL",
               "SLACK_ALERT_WEBHOOK_URL", "DATABASE_URL", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY", "INTAKE_TOKEN",
               "SITE_URL", "MONITORING_TOKEN")


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Nothing configured (no .env here, none of the settings that name a store), data in tmp_path/data."""
    monkeypatch.chdir(tmp_path)
    for name in CONFIGURING:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SALESPULSE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


async def test_report_after_make_run_reports_on_the_demo_store(data_dir: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings()
    assert demo.nothing_configured(settings)
    async with demo.demo_database(data_dir) as dsn:  # what `make run` left: the demo's store, kept
        await demo.seed_history(dsn, demo.demo_settings(settings, dsn=dsn), orders=300)
    code = await report_command(settings, which="evening", date=None, dry_run=True)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[dry run: nothing recorded or posted]" in out and "Evening report" in out, out
    assert "migrate" not in err and "salespulse_demo" in err and "DATABASE_URL" in err, err


async def test_report_before_any_demo_says_to_start_it_not_to_migrate(data_dir: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Following "run `salespulse migrate` first" made an empty store in the embedded server's own database."""
    code = await report_command(load_settings(), which="evening", date=None, dry_run=True)
    err = capsys.readouterr().err
    assert code == 1
    assert "migrate" not in err and "make run" in err and "DATABASE_URL" in err, err
