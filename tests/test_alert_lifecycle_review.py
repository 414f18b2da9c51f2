"""The alert lifecycle as the on-call person lives it (a review's findings): a critical from quiet hours pages
once they end; an unacknowledged critical's reminders page; an acknowledged critical that flaps does not page
again; flapping payment failures are one message; an inhibited warning does not remind; a double tap on a button
is said once."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from tests import test_alerts
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.test_alerts import NOON, NY, click, failures, posted_ts, run

clock, store, jobs = test_alerts.clock, test_alerts.store, test_alerts.jobs  # a New York store, Tuesday 14:00


def top_posts(bot: Bot) -> list[dict[str, Any]]:
    return [m for m in bot.slack_api.posted() if not m.get("thread_ts")]


def pages(bot: Bot) -> list[str]:
    return [m["text"] for m in top_posts(bot) if "<!here>" in (m.get("text") or "")]


async def test_acknowledged_critical_flapping_does_not_page_again(store: Bot, jobs: AlertJobs,
                                                                  clock: FakeClock) -> None:
    """10 payment failures page with <!here>; on-call acknowledges. The failures age out (resolved by itself), and
    a minute later 10 more come: the same incident, still acknowledged (the ack carries over) — it must not page
    the channel again with <!here> as if nobody were on it."""
    await failures(store, 10, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    assert len(pages(store)) == 1
    first = await store.deps.pool.fetchval("SELECT id FROM alerts WHERE rule = 'payment_failures_critical'")
    await click(store, "alert_ack", first, user="UONCALL", ts=posted_ts(store))
    await run(jobs, store)
    clock.advance(minutes=11)
    await run(jobs, store)  # aged out: resolved by itself
    await failures(store, 10, clock.now - dt.timedelta(seconds=30))
    await run(jobs, store)
    acked = await store.deps.pool.fetchval(
        "SELECT acknowledged_by FROM alerts WHERE rule = 'payment_failures_critical' ORDER BY id DESC LIMIT 1")
    assert acked == "UONCALL"  # the ack carried over: the bot itself treats it as the same, acknowledged incident
    assert len(pages(store)) == 1, pages(store)


async def test_flapping_payment_failures_post_one_message(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Three card declines every 12 minutes for an hour (card testing, a flaky gateway): the warning hovers around
    its line. One message updated in place — not a new post (plus a "Resolved" reply) every 12 minutes."""
    for _ in range(5):
        await failures(store, 3, clock.now - dt.timedelta(seconds=30))
        for _ in range(12):
            await run(jobs, store)
            clock.advance(minutes=1)
    posts = [m["text"] for m in top_posts(store) if "Payment failures" in (m.get("text") or "")]
    assert len(posts) == 1, posts


async def test_double_click_on_acknowledge_says_it_once(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """A double tap on Acknowledge (two block_actions within a second): one "Acknowledged by" in the thread."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    ts = posted_ts(store)
    await asyncio.gather(click(store, "alert_ack", alert_id, user="UONCALL", ts=ts),
                         click(store, "alert_ack", alert_id, user="UONCALL", ts=ts))
    await asyncio.sleep(0.5)
    await run(jobs, store)
    replies = [m["text"] for m in store.slack_api.posted() if m.get("thread_ts")]
    assert len([r for r in replies if "Acknowledged" in r]) == 1, replies


async def test_unacknowledged_critical_reminder_notifies_someone(store: Bot, jobs: AlertJobs,
                                                                 clock: FakeClock) -> None:
    """A critical nobody acknowledged for 4 h: the reminder must reach people (a thread reply only notifies
    the thread's followers — nobody but the bot here): broadcast to the channel or mention on-call."""
    await store.deps.pool.execute("INSERT INTO site_probes (url, checked_at, ok, status, elapsed_ms, error)"
                                  " SELECT 'http://x', $1, true, 200, 10, null WHERE false", clock.now)
    for _ in range(5):
        await failures(store, 10, clock.now - dt.timedelta(seconds=30))
        await run(jobs, store)
        clock.advance(minutes=9)
    # keep it firing for 4 h
    while clock.now < NOON + dt.timedelta(hours=4, minutes=5):
        await failures(store, 10, clock.now - dt.timedelta(seconds=30))
        await run(jobs, store)
        clock.advance(minutes=9)
    reminders = [c.args for c in store.slack_api.calls
                 if c.method == "chat.postMessage" and c.args.get("thread_ts") and "Still firing" in c.args["text"]]
    assert reminders, "no reminder"
    r = reminders[0]
    assert r.get("reply_broadcast") in (True, "true", "1") or "<!here>" in r["text"], r


async def test_ack_warning_then_it_worsens_to_critical_pages(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """3 failures: warning, acknowledged. Then 10: the critical must page (<!here>) despite the warning's ack."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=2))
    await run(jobs, store)
    warn = await store.deps.pool.fetchval("SELECT id FROM alerts WHERE rule = 'payment_failures_warning'")
    await click(store, "alert_ack", warn, user="UONCALL", ts=posted_ts(store))
    await run(jobs, store)
    clock.advance(minutes=1)
    await failures(store, 7, clock.now - dt.timedelta(seconds=30))
    await run(jobs, store)
    assert len(pages(store)) == 1, [m["text"] for m in top_posts(store)]


async def test_inhibited_warning_does_not_remind_while_its_critical_fires(store: Bot, jobs: AlertJobs,
                                                                         clock: FakeClock) -> None:
    """Warning posted, then the critical of its family fires: inhibition (Alertmanager) mutes the warning's
    notifications while the critical fires — its reminders included."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=2))
    await run(jobs, store)
    clock.advance(minutes=1)
    while clock.now < NOON + dt.timedelta(hours=4, minutes=10):
        await failures(store, 10, clock.now - dt.timedelta(seconds=30))
        await run(jobs, store)
        clock.advance(minutes=9)
    reminders = [m["text"] for m in store.slack_api.posted() if m.get("thread_ts") and "Still firing" in m["text"]]
    assert not any("3 payment" in r or "13 payment" in r or "WARNING" in r for r in reminders), reminders
    warn_ts = next(m["ts"] for m in store.slack_api.messages if "WARNING" in (m.get("text") or ""))
    warn_reminders = [m for m in store.slack_api.posted() if m.get("thread_ts") == warn_ts and "Still" in m["text"]]
    assert warn_reminders == [], warn_reminders


async def test_silence_then_resolve_then_fire_after_expiry(store: Bot, jobs: AlertJobs, clock: FakeClock) -> None:
    """Silence 1 h; the failures age out (resolved); 70 min later they come back: a new message (the silence
    is over), one only."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    await click(store, "alert_silence_1h", alert_id, user="UONCALL", ts=posted_ts(store))
    await run(jobs, store)
    clock.advance(minutes=16)  # out of the 10-minute window, and past the 15 minutes it keeps firing for
    await run(jobs, store)
    clock.advance(minutes=54)
    await failures(store, 3, clock.now - dt.timedelta(seconds=30))
    await run(jobs, store)
    await run(jobs, store)
    posts = [m["text"] for m in top_posts(store)]
    assert len(posts) == 2, posts
    last = await store.deps.pool.fetchrow("SELECT silenced_until, notified_at FROM alerts ORDER BY id DESC LIMIT 1")
    assert last["silenced_until"] is None and last["notified_at"] is not None


async def test_critical_from_quiet_hours_pages_once_they_end(dsn: str, fake_slack: FakeSlack) -> None:
    """QUIET_HOURS=22:00-07:00. Payment failures spike at 23:00 and go on all night, nobody acknowledges: the
    critical is posted without <!here> (documented). At 07:00 the quiet hours end and it still fires
    unacknowledged: someone must be paged now (Alertmanager sends a muted alert when its mute interval ends)."""
    clock = FakeClock(dt.datetime(2026, 6, 9, 23, 0, tzinfo=NY).astimezone(dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         QUIET_HOURS="22:00-07:00") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            end = dt.datetime(2026, 6, 10, 8, 0, tzinfo=NY).astimezone(dt.UTC)
            while clock.now < end:
                await failures(bot, 10, clock.now - dt.timedelta(seconds=30))
                await run(jobs, bot)
                clock.advance(minutes=9)
        finally:
            await jobs.leadership.release()
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM alerts WHERE rule = 'payment_failures_critical'"
                                            " AND resolved_at IS NULL AND acknowledged_by IS NULL") == 1
        paged = [c.args for c in fake_slack.calls if c.method == "chat.postMessage"
                 and ("<!here>" in (c.args.get("text") or "") or c.args.get("reply_broadcast") in (True, "true"))]
        assert paged, [c.args.get("text") for c in fake_slack.calls if c.method == "chat.postMessage"]


def replies_saying(bot: Bot, words: str) -> list[dict[str, Any]]:
    """The thread replies (as chat.postMessage got them) whose text has `words`."""
    return [c.args for c in bot.slack_api.calls
            if c.method == "chat.postMessage" and c.args.get("thread_ts") and words in (c.args.get("text") or "")]


async def test_acknowledged_critical_back_after_its_hold_is_posted_without_paging(store: Bot, jobs: AlertJobs,
                                                                                  clock: FakeClock) -> None:
    """Past the 15 minutes payment failures keep firing for, the acknowledged critical resolves by itself; back
    half an hour later it is a new alert and a new message, acknowledged (carried over), and without <!here>."""
    await failures(store, 10, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    first = await store.deps.pool.fetchval("SELECT id FROM alerts WHERE rule = 'payment_failures_critical'")
    await click(store, "alert_ack", first, user="UONCALL", ts=posted_ts(store))
    clock.advance(minutes=16)
    await run(jobs, store)
    assert await store.deps.pool.fetchval("SELECT resolved_at FROM alerts WHERE id = $1", first) is not None
    clock.advance(minutes=14)
    await failures(store, 10, clock.now - dt.timedelta(seconds=30))
    await run(jobs, store)
    criticals = [m["text"] for m in top_posts(store) if "CRITICAL" in m["text"]]
    assert len(criticals) == 2 and "<!here>" not in criticals[1], criticals
    again = [c.args for c in store.slack_api.calls if c.method == "chat.postMessage"
             and not c.args.get("thread_ts") and "CRITICAL" in c.args["text"]][1]
    assert "Acknowledged by <@UONCALL>" in str(again["blocks"]) and "<!here>" not in str(again["blocks"])


async def test_double_click_on_silence_says_it_once_and_records_both(store: Bot, jobs: AlertJobs,
                                                                     clock: FakeClock) -> None:
    """A double tap on "Silence 1 h": both clicks are in the audit trail, the thread says "Silenced" once and the
    message is updated once."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    ts = posted_ts(store)
    await asyncio.gather(click(store, "alert_silence_1h", alert_id, user="UONCALL", ts=ts),
                         click(store, "alert_silence_1h", alert_id, user="UONCALL", ts=ts))
    for _ in range(100):  # the second click is recorded a moment after the first
        if await store.deps.pool.fetchval("SELECT count(*) FROM alert_actions WHERE alert_id = $1", alert_id) == 2:
            break
        await asyncio.sleep(0.02)
    await run(jobs, store)
    assert await store.deps.pool.fetchval("SELECT count(*) FROM alert_actions WHERE alert_id = $1", alert_id) == 2
    assert len(replies_saying(store, "Silenced")) == 1
    assert len([c for c in store.slack_api.calls if c.method == "chat.update"]) == 1


async def test_quiet_critical_reminds_quietly_then_pages_once_when_they_end(dsn: str, fake_slack: FakeSlack) -> None:
    """QUIET_HOURS=22:00-07:00, a critical from 23:00 nobody acknowledges: its 03:00 reminder stays a quiet thread
    reply; at 07:00 one reply pages (the mention, sent to the channel too), not one per check after it."""
    clock = FakeClock(dt.datetime(2026, 6, 9, 23, 0, tzinfo=NY).astimezone(dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         QUIET_HOURS="22:00-07:00") as bot:
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            while clock.now < dt.datetime(2026, 6, 10, 7, 40, tzinfo=NY).astimezone(dt.UTC):
                await failures(bot, 10, clock.now - dt.timedelta(seconds=30))
                await run(jobs, bot)
                clock.advance(minutes=9)
        finally:
            await jobs.leadership.release()
        fired = [c.args for c in fake_slack.calls if c.method == "chat.postMessage" and not c.args.get("thread_ts")]
        assert len(fired) == 1 and "<!here>" not in fired[0]["text"]
        reminders = replies_saying(bot, "Still firing")
        assert len(reminders) == 2, [r["text"] for r in reminders]
        assert not reminders[0].get("reply_broadcast") and "<!here>" not in reminders[0]["text"]  # 03:00, quiet
        assert reminders[1].get("reply_broadcast") is True and reminders[1]["text"].startswith("<!here> ")
        assert "quiet hours" in reminders[1]["text"]
        assert_valid_message(reminders[1])
