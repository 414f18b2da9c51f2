"""How reports reach people: the chart uploaded into the report's thread with Slack's two-step flow (or
saved locally, or skipped without permission), and `salespulse report` on demand, dry run included."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from PIL import Image

from bot.cli.main import main
from bot.reports.chart import HEIGHT, WIDTH
from bot.reports.reporter import MAX_CHART_ATTEMPTS
from tests.blockkit import assert_valid_message
from tests.conftest import post_report, start_bot
from tests.fakes import FakeSlack
from tests.report_seed import at, generate, insert

NY = ZoneInfo("America/New_York")
EVENING = at(NY, 2026, 3, 10, 18, 0, 30)


def decode(png: bytes) -> Image.Image:
    """The PNG, decoded (and so proven well-formed)."""
    image = Image.open(io.BytesIO(png))
    image.load()
    return image



async def chart_row(pool: asyncpg.Pool) -> asyncpg.Record:
    """The report's chart columns."""
    return await pool.fetchrow("SELECT chart_status, chart_file_id, chart_error, chart_png IS NULL AS dropped,"
                               " chart_attempts FROM reports")


async def test_chart_is_uploaded_into_the_reports_thread_in_two_steps(dsn: str, fake_slack: FakeSlack) -> None:
    """After the report is posted: files.getUploadURLExternal, the bytes POSTed to its URL, then
    files.completeUploadExternal sharing the file in the message's thread — once, however often retried."""
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York",
                         SLACK_REPORTS_CHANNEL="C0REPORTS") as bot:
        await insert(bot.deps.pool, generate(tz=NY, first=dt.date(2026, 3, 2), last=dt.date(2026, 3, 10), seed=5))
        reporter = await post_report(bot)
        [post] = [c for c in fake_slack.calls if c.method == "chat.postMessage"]
        assert_valid_message(post.args)
        assert post.args["channel"] == "C0REPORTS" and post.args["text"].startswith("🌆 Evening report · Tue 10 Mar")
        assert await reporter.upload_charts() == 1
        assert await reporter.upload_charts() == 0
        # (conversations.list and .join are the start-up joins: tests/test_channels.py)
        methods = [c.method for c in fake_slack.calls if c.method != "chat.postMessage"
                   and not c.method.startswith("conversations.")]
        assert methods == ["files.getUploadURLExternal", "upload:F00000001", "files.completeUploadExternal"]
        [step1] = fake_slack.posted("files.getUploadURLExternal")
        png = fake_slack.uploads["F00000001"]
        assert step1["filename"] == "salespulse-evening-2026-03-10.png" and int(step1["length"]) == len(png)
        assert decode(png).size == (WIDTH, HEIGHT) and decode(png).format == "PNG"
        [step3] = fake_slack.posted("files.completeUploadExternal")
        ts = await bot.deps.pool.fetchval("SELECT slack_ts FROM outbox WHERE kind = 'report'")
        assert step3["channel_id"] == "C0REPORTS" and step3["thread_ts"] == ts
        assert [f["id"] for f in step3["files"]] == ["F00000001"]
        row = await chart_row(bot.deps.pool)
        assert (row["chart_status"], row["chart_file_id"], row["dropped"]) == ("uploaded", "F00000001", True)


@pytest.mark.parametrize("error", ["missing_scope", "not_allowed_token_type"])
async def test_without_file_permission_the_report_stays_without_its_chart(dsn: str, fake_slack: FakeSlack,
                                                                          error: str) -> None:
    """Slack refusing the upload for good leaves the posted report alone and never retries the chart."""
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York") as bot:
        reporter = await post_report(bot)
        fake_slack.fail_next(1, error=error)
        assert await reporter.upload_charts() == 0
        assert await reporter.upload_charts() == 0
        assert len(fake_slack.posted()) == 1
        assert [c.method for c in fake_slack.calls].count("files.getUploadURLExternal") == 1
        assert not fake_slack.posted("files.completeUploadExternal")
        row = await chart_row(bot.deps.pool)
        assert (row["chart_status"], row["chart_error"], row["dropped"]) == ("skipped", error, True)


async def test_a_slack_outage_retries_the_chart_then_gives_up(dsn: str, fake_slack: FakeSlack) -> None:
    """5xx answers keep the chart pending for the next run, up to a bounded number of attempts."""
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York") as bot:
        reporter = await post_report(bot)
        fake_slack.fail_next(1, status=503)
        assert await reporter.upload_charts() == 0
        assert (await chart_row(bot.deps.pool))["chart_status"] == "pending"
        assert await reporter.upload_charts() == 1  # Slack is back
        await bot.deps.pool.execute("UPDATE reports SET chart_status = 'pending', chart_png = '\\x00'")
        fake_slack.fail_next(MAX_CHART_ATTEMPTS, status=500)
        for _ in range(MAX_CHART_ATTEMPTS):
            await reporter.upload_charts()
        row = await chart_row(bot.deps.pool)
        assert (row["chart_status"], row["dropped"]) == ("failed", True)


async def test_local_mode_saves_the_chart_and_names_its_path(dsn: str, fake_slack: FakeSlack, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """With no Slack token the report prints, and its chart is written under SALESPULSE_DATA_DIR/reports."""
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York",
                         SLACK_BOT_TOKEN=None, SALESPULSE_DATA_DIR=str(tmp_path)) as bot:
        reporter = await post_report(bot)
        assert await reporter.upload_charts() == 0
        path = tmp_path / "reports" / "evening-2026-03-10.png"
        assert decode(path.read_bytes()).size == (WIDTH, HEIGHT)
        printed = capsys.readouterr().out
        assert "[#reports] 🌆 Evening report · Tue 10 Mar" in printed and f"Chart saved to {path}" in printed
        assert (await chart_row(bot.deps.pool))["chart_status"] == "saved"
    assert fake_slack.calls == []


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dsn: str) -> Path:
    """The CLI's environment: the test database, a New York store, nothing from the machine."""
    monkeypatch.chdir(tmp_path)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("STORE_TIMEZONE", "America/New_York")
    monkeypatch.setenv("SALESPULSE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def with_slack(monkeypatch: pytest.MonkeyPatch, slack: FakeSlack) -> None:
    """Give the CLI a bot token and the fake Slack to talk to."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("SLACK_API_URL", slack.url)


async def database_state(dsn: str) -> dict[str, str | None]:
    """A digest of every table a report could write to (all rows, all columns)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = ("reports", "outbox", "channel_pace", "delivery_errors", "schema_migrations", "orders")
        return {table: await conn.fetchval(  # fixed table names, not user input
            f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} AS t")
            for table in tables}
    finally:
        await conn.close()


async def test_cli_dry_run_prints_the_report_and_writes_nothing(cli_env: Path, dsn: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse report morning --date D --dry-run` prints a readable report; no row anywhere changes."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    await insert(pool, generate(tz=NY, first=dt.date(2026, 2, 28), last=dt.date(2026, 3, 9), seed=9))
    await pool.close()
    before = await database_state(dsn)
    assert await asyncio.to_thread(main, ["report", "morning", "--date", "2026-03-09", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[dry run: nothing recorded or posted] ☀️ Morning report · Mon 9 Mar")
    # Read on another day than Mon 9 Mar (the real clock), the day it covers is named, not "Yesterday".
    assert "== ☀️ Morning report · Mon 9 Mar ==" in out and "\n*Sun 8 Mar* · against Sun 1 Mar" in out
    assert "Chart: revenue by hour in" in out
    assert await database_state(dsn) == before
    assert not (cli_env / "data").exists()


async def test_cli_posts_the_report_once_and_uploads_its_chart_without_a_server(
        cli_env: Path, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """With no server running the CLI records, posts and uploads itself; a second run posts nothing."""
    with_slack(monkeypatch, fake_slack)
    assert await asyncio.to_thread(main, ["report", "evening", "--date", "2026-03-08"]) == 0
    assert "The evening report for Sun 8 Mar was posted to #daily-reports; chart in its thread." \
        in capsys.readouterr().out
    [post] = fake_slack.posted()
    assert_valid_message(post)
    assert post["text"].startswith("🌆 Evening report · Sun 8 Mar")
    assert len(fake_slack.posted("files.completeUploadExternal")) == 1
    assert await asyncio.to_thread(main, ["report", "evening", "--date", "2026-03-08"]) == 0
    assert "was already posted" in capsys.readouterr().out
    assert len(fake_slack.posted()) == 1


async def test_cli_before_the_reports_time_posts_the_figures_so_far_and_records_nothing(
        cli_env: Path, dsn: str, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Asked for tomorrow's evening report, the CLI posts it marked "before its time" (no chart) and records no
    report, so the scheduled one still goes out; each such request is one post."""
    with_slack(monkeypatch, fake_slack)
    tomorrow = f"{dt.datetime.now(NY).date() + dt.timedelta(days=1)}"
    assert await asyncio.to_thread(main, ["report", "evening", "--date", tomorrow]) == 0
    said = capsys.readouterr().out
    assert "early, with the figures so far (no chart); the report itself still goes out at 18:00" in said, said
    [post] = fake_slack.posted()
    assert_valid_message(post)
    assert post["text"].startswith("🌆 Evening report") and "before its time" in json.dumps(post["blocks"])
    assert fake_slack.posted("files.completeUploadExternal") == []
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM reports") == 0
    finally:
        await conn.close()


async def test_cli_early_report_slack_refuses_is_said_not_posted(
        cli_env: Path, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Slack refusing the figures so far for good (invalid_blocks) is said, exit 1, as for a report on time."""
    with_slack(monkeypatch, fake_slack)
    fake_slack.fail_next(20, error="invalid_blocks", method="chat.postMessage")
    tomorrow = f"{dt.datetime.now(NY).date() + dt.timedelta(days=1)}"
    assert await asyncio.to_thread(main, ["report", "evening", "--date", tomorrow]) == 1
    said = capsys.readouterr().out
    assert "could not be posted (failed); see /health" in said and "Posted" not in said, said
    assert fake_slack.posted() == []


async def test_cli_in_local_mode_prints_the_report_and_saves_the_chart(cli_env: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """No Slack token: the report is printed as the server would, and the chart saved to the data dir."""
    assert await asyncio.to_thread(main, ["report", "morning", "--date", "2026-03-10"]) == 0
    out = capsys.readouterr().out
    path = cli_env / "data" / "reports" / "morning-2026-03-10.png"
    assert "[#reports] ☀️ Morning report · Tue 10 Mar" in out and f"chart saved to {path}" in out
    assert decode(path.read_bytes()).size == (WIDTH, HEIGHT)


def test_cli_rejects_a_malformed_date(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--date must be YYYY-MM-DD; anything else exits 2 with the reason."""
    assert main(["report", "evening", "--date", "10/03/2026", "--dry-run"]) == 2
    assert "--date must be YYYY-MM-DD" in capsys.readouterr().err


async def test_cli_report_follows_the_channel_changed_from_slack(
        cli_env: Path, dsn: str, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reports channel saved from Slack's Settings view wins over SLACK_REPORTS_CHANNEL for the CLI too."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO settings_overrides (key, value, updated_by, updated_at)"
                       " VALUES ('SLACK_REPORTS_CHANNEL', '\"C0SALES\"', 'UADMIN01', now())")
    await conn.close()
    with_slack(monkeypatch, fake_slack)
    assert await asyncio.to_thread(main, ["report", "evening", "--date", "2026-03-08"]) == 0
    [post] = fake_slack.posted()
    assert post["channel"] == "C0SALES"
