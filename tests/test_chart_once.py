"""The report's chart: one chart in the report's thread, even when Slack's answer to sharing it is lost. The file id
is recorded before the share; a later run asks files.info whether that file is shared, and shares the same file
(never a new copy) only when it is not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.reports.reporter import Reporter
from tests.conftest import Bot, post_report, start_bot
from tests.fakes import FakeSlack
from tests.test_report_delivery import EVENING


@pytest.fixture
async def posted(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[tuple[Bot, Reporter]]:
    """The evening report posted, its chart pending, and a reporter whose Slack client gives up after 1 s."""
    async with start_bot(dsn, fake_slack, clock=lambda: EVENING, STORE_TIMEZONE="America/New_York") as bot:
        await post_report(bot)
        quick = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url, timeout=1, retry_handlers=[])
        yield bot, Reporter(pool=bot.deps.pool, settings=bot.deps.settings, slack=quick, clock=bot.deps.clock,
                            channels=bot.deps.channels)


async def chart(pool: asyncpg.Pool) -> tuple[str, str | None]:
    """The report's chart status and the Slack file id recorded for it."""
    row = await pool.fetchrow("SELECT chart_status, chart_file_id FROM reports")
    return row["chart_status"], row["chart_file_id"]


def file_calls(fake_slack: FakeSlack) -> list[str]:
    """The file methods called, in order, each with the file it named (the upload URL's POST as upload:F…)."""
    out = []
    for c in fake_slack.calls:
        if c.method == "files.completeUploadExternal":
            out.append(f"{c.method}:{','.join(f['id'] for f in c.args['files'])}")
        elif c.method == "files.info":
            out.append(f"{c.method}:{c.args['file']}")
        elif c.method.startswith(("files.", "upload:")):
            out.append(c.method)
    return out


async def test_a_chart_shared_whose_answer_was_lost_is_not_shared_again(posted: tuple[Bot, Reporter],
                                                                        fake_slack: FakeSlack) -> None:
    """files.completeUploadExternal shares the chart in the thread, but its answer does not come back in time (the
    client's timeout; a network blip). The next run must not upload and share a second copy of the chart: files.info
    says the file is in the channel, and the chart is settled as uploaded."""
    bot, reporter = posted
    fake_slack.fail_next(1, accept=True, delay=2, method="files.completeUploadExternal")
    assert await reporter.upload_charts() == 0  # shared in Slack, but the bot never heard so
    assert len(fake_slack.posted("files.completeUploadExternal")) == 1
    assert await chart(bot.deps.pool) == ("pending", "F00000001")
    assert await reporter.upload_charts() == 1  # the next report job run
    shares = fake_slack.posted("files.completeUploadExternal")
    assert len(shares) == 1, [s["files"] for s in shares]
    assert file_calls(fake_slack) == ["files.getUploadURLExternal", "upload:F00000001",
                                      "files.completeUploadExternal:F00000001", "files.info:F00000001"]
    assert await chart(bot.deps.pool) == ("uploaded", "F00000001")
    assert await reporter.upload_charts() == 0


async def test_a_share_slack_did_not_make_is_made_again_with_the_same_file(posted: tuple[Bot, Reporter],
                                                                          fake_slack: FakeSlack) -> None:
    """The share failed for real (a 500): the next run finds it unshared and shares the file already uploaded."""
    bot, reporter = posted
    fake_slack.fail_next(1, status=500, method="files.completeUploadExternal")
    assert await reporter.upload_charts() == 0
    assert await chart(bot.deps.pool) == ("pending", "F00000001")
    assert await reporter.upload_charts() == 1
    assert file_calls(fake_slack) == ["files.getUploadURLExternal", "upload:F00000001",
                                      "files.completeUploadExternal:F00000001", "files.info:F00000001",
                                      "files.completeUploadExternal:F00000001"]
    assert len(fake_slack.posted("files.completeUploadExternal")) == 1
    assert await chart(bot.deps.pool) == ("uploaded", "F00000001")


@pytest.mark.parametrize(("answer", "then"), [
    # Slack cannot answer now: nothing is shared meanwhile, the file is asked about again on the run after.
    ({"status": 503}, ["files.info:F00000001", "files.info:F00000001", "files.completeUploadExternal:F00000001"]),
    # No files:read scope: Slack cannot be asked, so the same file is shared again (never a new copy).
    ({"error": "missing_scope"}, ["files.info:F00000001", "files.completeUploadExternal:F00000001"]),
    # The file is gone from Slack (deleted): a new one is uploaded and shared.
    ({"error": "file_not_found"}, ["files.info:F00000001", "files.getUploadURLExternal", "upload:F00000002",
                                   "files.completeUploadExternal:F00000002"]),
])
async def test_when_files_info_cannot_tell(posted: tuple[Bot, Reporter], fake_slack: FakeSlack,
                                           answer: dict[str, object], then: list[str]) -> None:
    """The share failed (a 500), and on the next run files.info fails in its turn: each failure has its course."""
    bot, reporter = posted
    fake_slack.fail_next(1, status=500, method="files.completeUploadExternal")
    assert await reporter.upload_charts() == 0
    fake_slack.fail_next(1, method="files.info", **answer)  # type: ignore[arg-type]  # status or error, as listed
    for _ in range(3):
        await reporter.upload_charts()
    first = ["files.getUploadURLExternal", "upload:F00000001", "files.completeUploadExternal:F00000001"]
    assert file_calls(fake_slack) == first + then
    assert (await chart(bot.deps.pool))[0] == "uploaded"
