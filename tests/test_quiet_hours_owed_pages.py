"""A critical that could not page inside quiet hours pages once they end, however it became a critical in them: a
warning promoted to critical in Settings, and "Database unreachable", which goes straight to Slack. A critical
demoted before they end owes nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.test_alert_lifecycle_fixes import _ny, _sync_failing, set_rule
from tests.test_alerts import posted_ts, run


@pytest.fixture
async def night(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[tuple[Bot, AlertJobs, FakeClock]]:
    """A New York store with QUIET_HOURS=22:00-07:00 (business hours 09:00-21:00), Tuesday 20:00."""
    clock = FakeClock(_ny(9, 20))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         QUIET_HOURS="22:00-07:00") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            yield bot, jobs, clock
        finally:
            await jobs.leadership.release()


async def _set_sync_failures(bot: Bot, clock: FakeClock, severity: str) -> None:
    """An admin sets the sync_failures rule's severity in Settings."""
    await set_rule(bot, clock, {"enabled": True, "severity": severity})


async def _checks_at(bot: Bot, jobs: AlertJobs, clock: FakeClock, *moments: dt.datetime) -> list[dict[str, Any]]:
    """A check at each moment, the sync failing all along: the thread replies they posted."""
    before = len(bot.slack_api.calls)
    for at in moments:
        clock.now = at
        await _sync_failing(bot, clock)
        await run(jobs, bot)
    return [c.args for c in bot.slack_api.calls[before:] if c.method == "chat.postMessage" and c.args.get("thread_ts")]


def _pages(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in replies if r.get("reply_broadcast") is True and r["text"].startswith("<!here> ")]


async def test_warning_promoted_to_critical_in_quiet_hours_pages_when_they_end(
        night: tuple[Bot, AlertJobs, FakeClock]) -> None:
    """Sync failures post a warning at 20:00 and go on all night. At 23:00 the owner makes the rule critical in
    Settings: the open alert becomes a critical, re-rendered without <!here> (quiet hours). Nobody acknowledges it,
    so at 07:00 it must page, as a critical posted in quiet hours does — not at 08:00, 4 h after its 04:00 quiet
    reminder — and page once."""
    bot, jobs, clock = night
    await _checks_at(bot, jobs, clock, _ny(9, 20))
    await _set_sync_failures(bot, clock, "critical")
    quiet = await _checks_at(bot, jobs, clock, _ny(9, 23, 1), _ny(10, 4))
    assert await bot.deps.pool.fetchval("SELECT severity FROM alerts WHERE rule = 'sync_failures'") == "critical"
    assert len(quiet) == 1 and not _pages(quiet), quiet  # the 04:00 reminder stays quiet
    after = await _checks_at(bot, jobs, clock, _ny(10, 7, 5), _ny(10, 7, 15), _ny(10, 7, 25))
    assert len(_pages(after)) == 1 and len(after) == 1, [r["text"] for r in after]
    assert "quiet hours" in after[0]["text"]
    assert_valid_message(after[0])


async def test_quiet_critical_demoted_to_warning_owes_no_page(night: tuple[Bot, AlertJobs, FakeClock]) -> None:
    """sync_failures is critical; its alert is posted quietly at 23:01, then the owner demotes the rule to a warning
    at 06:00. A warning owes no page: from 09:00 it reminds every 4 h as warnings do, not at every check."""
    bot, jobs, clock = night
    clock.now = _ny(9, 23)
    await _set_sync_failures(bot, clock, "critical")
    await _checks_at(bot, jobs, clock, _ny(9, 23, 1))
    clock.now = _ny(10, 6)
    await _set_sync_failures(bot, clock, "warning")
    replies = await _checks_at(bot, jobs, clock, _ny(10, 6, 1), _ny(10, 9, 5), _ny(10, 9, 15), _ny(10, 9, 25))
    assert len(replies) == 1 and not _pages(replies), [r["text"] for r in replies]


async def test_database_unreachable_from_quiet_hours_pages_once_they_end(
        night: tuple[Bot, AlertJobs, FakeClock]) -> None:
    """PostgreSQL goes away at 23:00: "Database unreachable" is posted without <!here> (quiet hours). It is still
    unreachable at 07:00: someone must be paged then, once, in its thread and sent to the channel."""
    bot, jobs, clock = night
    assert await jobs.leadership.hold()
    await bot.deps.pool.close()  # the database is unreachable for this process
    for at in (_ny(9, 23), _ny(9, 23, 1), _ny(10, 3), _ny(10, 6, 59), _ny(10, 7, 1), _ny(10, 7, 2), _ny(10, 8)):
        clock.now = at
        await jobs.tick()
    posted = bot.slack_api.posted()
    assert "Database unreachable" in posted[0]["text"] and "<!here>" not in posted[0]["text"]
    pages = [p for p in posted if "<!here>" in p["text"]]
    assert len(pages) == 1 and len(posted) == 2, [p["text"] for p in posted]
    assert pages[0]["thread_ts"] == posted_ts(bot) and pages[0].get("reply_broadcast") is True, pages[0]
    assert pages[0]["text"].startswith("<!here> ") and "Database unreachable" in pages[0]["text"]
    assert_valid_message(pages[0])


async def test_owed_page_with_no_mention_does_not_remind_at_every_check(
        night: tuple[Bot, AlertJobs, FakeClock]) -> None:
    """Restarted overnight with oncall_mention: "" in the rules file, the alert posted quietly cannot page when the
    quiet hours end: it owes nothing, or it would remind at every check, its debt never paid."""
    bot, jobs, clock = night
    clock.now = _ny(9, 23)
    await _set_sync_failures(bot, clock, "critical")
    await _checks_at(bot, jobs, clock, _ny(9, 23, 1))  # posted quietly: it owes its page
    live = bot.deps.live
    live.base_rules = dataclasses.replace(live.base_rules, mention="")
    live.rules = dataclasses.replace(live.rules, mention="")
    replies = await _checks_at(bot, jobs, clock, _ny(10, 7, 5), _ny(10, 7, 15), _ny(10, 7, 25), _ny(10, 7, 35))
    # the repeat interval is 4 h: at most one reminder (the one owed) in these 30 minutes
    assert len(replies) <= 1, [r["text"] for r in replies]
