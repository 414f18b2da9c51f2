"""Four gaps in the alert lifecycle (a review's findings): a warning made critical in Settings outside quiet hours
pages once, not at its next 4-hourly reminder; the second tap of a double tap is audited as a no-op ("stale");
the local feed's answer to a click on a resolved alert points to the incident firing again, as Slack's does; a
settings-change notification names the people it adds as live mentions (review r1: not those kept or removed,
and never a user group)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bot.alerts.jobs import AlertJobs
from bot.alerts.respond import press
from bot.blocks import settings as view
from bot.blocks.alerts import ACK_ACTION, SILENCE_HOUR_ACTION
from bot.blocks.settings import ChangeLine, changes_message
from queries import alert_actions as audit
from queries import alerts as q
from tests import test_alerts, test_quiet_hours_owed_pages
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.settings_forms import ADMIN, OTHER, open_settings, put, state_of, submit
from tests.test_alert_lifecycle_fixes import _ny
from tests.test_alerts import click, failures, posted_ts, run
from tests.test_quiet_hours_owed_pages import _checks_at, _pages, _set_sync_failures

clock, store, jobs = test_alerts.clock, test_alerts.store, test_alerts.jobs  # a New York store, Tuesday 14:00
night = test_quiet_hours_owed_pages.night  # the same store with QUIET_HOURS=22:00-07:00, Tuesday 20:00
Night = tuple[Bot, AlertJobs, FakeClock]


async def test_warning_made_critical_outside_quiet_hours_pages_at_once_and_once(night: Night) -> None:
    """Sync failures post a warning at 20:00 (business hours, not quiet). At 20:10 the owner makes the rule critical
    in Settings: the open alert becomes a critical nobody has acknowledged. It must page now (<!here>, sent to the
    channel), as a new critical would — not at its next reminder, 4 h on (inside quiet hours: never) — and once."""
    bot, jobs, clock = night
    await _checks_at(bot, jobs, clock, _ny(9, 20))
    clock.now = _ny(9, 20, 10)
    await _set_sync_failures(bot, clock, "critical")
    replies = await _checks_at(bot, jobs, clock, _ny(9, 20, 11), _ny(9, 20, 21), _ny(9, 20, 31), _ny(9, 21, 30))
    assert await bot.deps.pool.fetchval("SELECT severity FROM alerts WHERE rule = 'sync_failures'") == "critical"
    pages = _pages(replies)
    assert len(pages) == 1 and len(replies) == 1, [r["text"] for r in replies]
    assert pages[0]["thread_ts"] == posted_ts(bot)
    assert "quiet hours" not in pages[0]["text"] and "critical" in pages[0]["text"], pages[0]["text"]
    assert_valid_message(pages[0])


async def test_warning_silenced_then_made_critical_pages_once_its_silence_ends(night: Night) -> None:
    """On call silenced the warning for an hour at 20:00, then it is made critical: nobody is paged while the
    silence runs; once it ends (21:00) the critical nobody acknowledged pages, once — not 4 h after its post."""
    bot, jobs, clock = night
    await _checks_at(bot, jobs, clock, _ny(9, 20))
    alert_id = await bot.deps.pool.fetchval("SELECT id FROM alerts WHERE rule = 'sync_failures'")
    await click(bot, SILENCE_HOUR_ACTION, alert_id, user="UONCALL", ts=posted_ts(bot))
    clock.now = _ny(9, 20, 10)
    await _set_sync_failures(bot, clock, "critical")
    silenced = await _checks_at(bot, jobs, clock, _ny(9, 20, 11), _ny(9, 20, 21), _ny(9, 20, 51))
    assert not _pages(silenced), [r["text"] for r in silenced]
    after = await _checks_at(bot, jobs, clock, _ny(9, 21, 1), _ny(9, 21, 11), _ny(9, 21, 21), _ny(9, 21, 31))
    assert len(_pages(after)) == 1, [r["text"] for r in after]


@pytest.mark.parametrize("button", [ACK_ACTION, SILENCE_HOUR_ACTION])
async def test_second_tap_of_a_double_tap_is_audited_as_stale(store: Bot, jobs: AlertJobs, clock: FakeClock,
                                                              button: str) -> None:
    """The same button twice in a row, by the same person: the first applies, the second changes nothing and must
    not be audited as applied (alert_actions allows applied | refused | stale)."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    for _ in range(2):
        await press(store.deps, action_id=button, alert_id=alert_id, user="UONCALL", surface="slack")
    outcomes = [a.outcome for a in await audit.for_alert(store.deps.pool, alert_id)]
    assert outcomes == ["applied", "stale"], outcomes


async def test_feed_click_on_a_resolved_alert_points_to_the_incident_firing_again(local_bot: Bot) -> None:
    """Alert #1 resolved, the same rule and labels fire again as #2. Acknowledge clicked on #1's message in the
    local feed: the answer says what Slack's does (firing again as #2, nothing changed here), not a bare
    "changed: false"; #2 stays unacknowledged."""
    pool, now = local_bot.deps.pool, dt.datetime.now(dt.UTC)
    rows = []
    for started, resolved in ((30, 5), (1, None)):
        rows.append(await q.insert_alert(pool, fingerprint="sync_failures", rule="sync_failures", family="sync",
                                         severity="warning", labels={}, title="Sync failing", summary="down",
                                         value=1, at=now - dt.timedelta(minutes=started)))
        if resolved is not None:
            await q.resolve(pool, alert_id=rows[-1].id, at=now - dt.timedelta(minutes=resolved))
    resp = await local_bot.client.post("/feed/action", json={"action_id": ACK_ACTION, "value": str(rows[0].id),
                                                              "channel": "alerts"})
    assert resp.status == 200
    body = await resp.json()
    assert body["changed"] is False
    assert f"firing again as alert #{rows[1].id}" in body.get("text", ""), body
    assert f"alert #{rows[1].id}" in body.get("html", ""), body
    assert await pool.fetchval("SELECT acknowledged_by FROM alerts WHERE id = $1", rows[1].id) is None


@pytest.fixture
async def grouped(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with one admin, and the on-call user group as its alert responders."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN, ALERT_RESPONDERS="S0ONCALL") as running_bot:
        yield running_bot


async def test_settings_change_names_the_people_it_adds_as_mentions(grouped: Bot) -> None:
    """The admin adds two people to the alert responders (the configured group stays): the notification shows
    them as Slack mentions — in its `text` (what a phone shows) as in its blocks — not as raw ids such as
    "@UOTHER01"; the group, kept, is named by id and never pinged whole (review r1)."""
    state = state_of(await open_settings(grouped))
    put(state, view.RESPONDERS, selected_users=[ADMIN, OTHER])
    assert await submit(grouped, state) == (200, {})
    await grouped.drain(ignore_pace=True)
    [posted] = [m for m in grouped.slack_api.posted() if "Settings changed" in m["text"]]
    for live in (f"<@{ADMIN}>", f"<@{OTHER}>"):
        assert live in posted["text"] and live in str(posted["blocks"]), (live, posted["text"])
    for where in (posted["text"], str(posted["blocks"])):
        assert "group S0ONCALL" in where and "<!subteam^" not in where, where
    assert_valid_message(posted)


def test_typed_text_in_a_settings_change_stays_inert_beside_the_mentions() -> None:
    """Only the people added are live: text carrying mentions (a rule title, a value) stays inert in the
    notification, even next to a live mention."""
    evil = "Ebook <@U0VICTIM> <!channel> <!subteam^S0EVIL>"
    msg = changes_message("U0ADMIN", [ChangeLine(evil, "U0OLD", "<@U0NEW>, group S0OPS", people=("U0NEW",))])
    assert_valid_message(msg)
    for live in ("<@U0ADMIN>", "<@U0NEW>"):
        assert live in msg.text, msg.text
    for inert in ("<@U0VICTIM>", "<!channel>", "<!subteam^S0EVIL>"):
        assert inert not in msg.text, msg.text
