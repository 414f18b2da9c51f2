"""App Home as a reviewer broke it (each test seen failing before its fix): several replicas on one database (a
change on one refreshes the tabs opened on another), a click on a stale Home, a round in flight publishing an older
render over a newer one, a reader removed while their Home renders, and Slack's Retry-After after a 429."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from bot.blocks import settings as view
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack
from tests.settings_forms import ADMIN, OTHER, open_settings, put, state_of, submit

VIEWER = "U_OWNER"


def views_of(slack: FakeSlack, user: str) -> list[str]:
    """Every view Slack accepted for `user` (not those it refused: hash_conflict), in the order it received them."""
    return [json.dumps(c.args["view"], ensure_ascii=False) for c in slack.calls
            if c.method == "views.publish" and c.answered == 200 and c.args.get("_ok", True)
            and c.args.get("user_id") == user]


def shown(slack: FakeSlack, user: str) -> str:
    """What `user`'s Home tab shows now: the last view Slack accepted for them."""
    views = views_of(slack, user)
    return views[-1] if views else ""


async def until(predicate: Any, within: float) -> bool:
    for _ in range(int(within / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


@contextlib.asynccontextmanager
async def two_replicas(dsn: str, slack: FakeSlack) -> AsyncIterator[tuple[Bot, Bot]]:
    async with start_bot(dsn, slack) as a, start_bot(dsn, slack) as b:
        for bot in (a, b):
            bot.deps.home.quiet, bot.deps.home.max_delay = 0.2, 0.5
        yield a, b


async def open_home(bot: Bot, slack: FakeSlack, user: str = VIEWER) -> None:
    before = len(slack.posted("views.publish"))
    resp = await bot.slack_event({"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"})
    assert resp.status == 200
    assert await until(lambda: len(slack.posted("views.publish")) > before, 5)


async def firing_alert(pool: asyncpg.Pool) -> int:
    alert_id: int = await pool.fetchval(
        "INSERT INTO alerts (fingerprint, rule, family, severity, labels, title, summary, started_at,"
        " last_seen_at) VALUES ('f', 'site_down', 'site', 'critical', '{}', 'Site down',"
        " 'https://shop.example is down', $1, $1) RETURNING id", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=12))
    return alert_id


@pytest.mark.parametrize("taker", ["same", "other"])
async def test_a_sale_taken_by_the_other_replica_refreshes_home(dsn: str, fake_slack: FakeSlack, taker: str) -> None:
    """The owner opened Home on replica A; the next sale's webhook lands on replica B (a load balancer picks). The
    owner's Home shows it after the quiet period, as it does with one replica ("same": the control)."""
    async with two_replicas(dsn, fake_slack) as (a, other):
        b = a if taker == "same" else other
        now = dt.datetime.now(dt.UTC)
        assert (await a.stripe(paid_checkout(1, now - dt.timedelta(minutes=3), amount=1000))).status == 200
        await open_home(a, fake_slack)
        assert "$10.00" in shown(fake_slack, VIEWER)
        assert (await b.stripe(paid_checkout(2, now - dt.timedelta(minutes=1), amount=123456))).status == 200
        # Same replica: refreshed in ~0.2 s. Give it 3 s.
        assert await until(lambda: "1,244.56" in shown(fake_slack, VIEWER), 3), \
            "Home opened on replica A never shows the sale replica B took"


@pytest.mark.parametrize("leader", ["same", "other"])
async def test_an_alert_fired_by_the_leader_reaches_home_opened_on_another_replica(
        dsn: str, fake_slack: FakeSlack, leader: str) -> None:
    """Payment failures fire an alert on the leader (replica B); the owner's Home was opened on replica A. While
    sales have stopped nothing else refreshes A's viewers, so the alert must get there on its own."""
    async with two_replicas(dsn, fake_slack) as (a, other):
        b = a if leader == "same" else other
        await open_home(a, fake_slack)
        assert "No alerts firing" in shown(fake_slack, VIEWER)
        now = dt.datetime.now(dt.UTC)
        for n in range(10):
            await b.deps.pool.execute(
                "INSERT INTO payment_failures (event_id, amount, currency, reason, created_at)"
                " VALUES ($1, 1000, 'USD', 'card_declined', $2)", f"evt_f{n}", now - dt.timedelta(seconds=30))
        jobs = AlertJobs(b.deps, leadership=Leadership(dsn))
        try:
            assert await jobs.tick() > 0
        finally:
            await jobs.leadership.release()
        assert await b.deps.pool.fetchval("SELECT count(*) FROM alerts WHERE resolved_at IS NULL") >= 1
        assert await until(lambda: "No alerts firing" not in shown(fake_slack, VIEWER), 3), \
            "the firing alert never reaches the Home tab opened on the other replica"


@pytest.mark.parametrize("clicked_on", ["same", "other"])
async def test_an_alert_acknowledged_in_the_channel_on_the_other_replica_is_shown_acknowledged_on_home(
        dsn: str, fake_slack: FakeSlack, clicked_on: str) -> None:
    """The owner's Home (opened on A) lists a firing alert with its buttons; a colleague acknowledges it in
    #system-alerts and Slack sends that click to replica B. The Home tab stops offering Acknowledge."""
    async with two_replicas(dsn, fake_slack) as (a, other):
        b = a if clicked_on == "same" else other
        alert_id = await firing_alert(a.deps.pool)
        await open_home(a, fake_slack)
        assert '"alert_ack"' in shown(fake_slack, VIEWER)
        assert (await b.button("alert_ack", str(alert_id), user="U_COLLEAGUE")).status == 200
        assert await until(lambda: "Acknowledged by <@U_COLLEAGUE>" in shown(fake_slack, VIEWER), 3), \
            "Home still shows the alert unacknowledged, with its Acknowledge button"


async def test_a_button_clicked_on_a_stale_home_rerenders_it(dsn: str, fake_slack: FakeSlack) -> None:
    """The alert was resolved without this replica hearing of it (here: in the database, as a notification lost
    while the listener reconnected would leave it), so the owner's Home still lists it as firing with its buttons.
    The owner presses Acknowledge there: the alert is over (UNCHANGED), and Home is re-rendered without it — not
    left with the ghost alert and a button that seems broken."""
    async with start_bot(dsn, fake_slack) as a:
        alert_id = await firing_alert(a.deps.pool)
        await open_home(a, fake_slack)
        await a.deps.pool.execute("UPDATE alerts SET resolved_at = now(), resolved_by = 'U_COLLEAGUE'"
                                  " WHERE id = $1", alert_id)
        await asyncio.sleep(0.5)
        assert '"alert_ack"' in shown(fake_slack, VIEWER)  # the ghost
        assert (await a.button("alert_ack", str(alert_id), user=VIEWER, view=True)).status == 200
        assert await until(lambda: '"alert_ack"' not in shown(fake_slack, VIEWER), 3), \
            "Acknowledge pressed on Home's ghost alert did nothing: Home not re-rendered, the resolved alert stays"


async def ack_during_a_slow_round(slack: FakeSlack, rounding: Bot, clicked: Bot) -> None:
    """Owner and partner opened Home on `rounding`; a sale starts a round there whose first publish (the partner's,
    who opened last) is slow to be answered; meanwhile the owner presses Acknowledge on Home and the click goes to
    `clicked`; then the round reaches the owner."""
    alert_id = await firing_alert(rounding.deps.pool)
    for user in ("U_OWNER", "U_PARTNER"):
        await open_home(rounding, slack, user)
    slack.fail_next(1, accept=True, delay=1.0, method="views.publish")
    assert (await rounding.stripe(paid_checkout(1, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))).status == 200
    assert await until(lambda: len(views_of(slack, "U_PARTNER")) == 2, 3)  # the round is under way
    assert (await clicked.button("alert_ack", str(alert_id), user="U_OWNER", view=True)).status == 200
    assert await until(lambda: "Acknowledged by <@U_OWNER>" in shown(slack, "U_OWNER"), 3)
    await asyncio.sleep(1.5)  # the round finishes
    owner = views_of(slack, "U_OWNER")
    first_acked = next(n for n, v in enumerate(owner) if "Acknowledged by <@U_OWNER>" in v)
    regressed = [n for n, v in enumerate(owner[first_acked:], first_acked) if "Acknowledged by" not in v]
    assert not regressed, (f"views {regressed} published after the acknowledged one show the alert "
                           f"unacknowledged again ({len(owner)} views in all)")


async def test_a_refresh_round_in_flight_does_not_undo_an_acknowledge_clicked_on_home(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The round renders once, then publishes viewer by viewer: its older render must not replace the acknowledged
    view the click published meanwhile."""
    async with start_bot(dsn, fake_slack) as bot:
        bot.deps.home.quiet, bot.deps.home.max_delay = 0.2, 0.5
        await ack_during_a_slow_round(fake_slack, bot, bot)


async def test_a_round_on_one_replica_does_not_undo_an_acknowledge_published_by_the_other(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The same with the click sent to replica B: A's round publishes with the hash of the view it knows, Slack
    answers hash_conflict (B published since), and A renders again instead of putting its older view back."""
    async with two_replicas(dsn, fake_slack) as (a, b):
        await ack_during_a_slow_round(fake_slack, a, b)
        refused = [c for c in fake_slack.calls if c.method == "views.publish" and not c.args.get("_ok", True)]
        assert [c.args.get("user_id") for c in refused] == ["U_OWNER"]


async def test_a_reader_removed_while_their_home_opens_does_not_keep_the_figures(
        dsn: str, fake_slack: FakeSlack) -> None:
    """OTHER opens Home; deciding whether to show them the alert buttons asks Slack for the responders' user group,
    which is slow to answer. Meanwhile the admin removes OTHER from the revenue readers: the refresh round hides
    the figures, and the open's publish — decided before the removal — must not put them back."""
    fake_slack.usergroups = {"S0ONCALL": [ADMIN]}
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN, ALERT_RESPONDERS="S0ONCALL") as bot:
        bot.deps.home.quiet, bot.deps.home.max_delay = 0.2, 0.5
        sale = paid_checkout(1, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), amount=123456)
        assert (await bot.stripe(sale)).status == 200
        state = state_of(await open_settings(bot))
        fake_slack.fail_next(1, accept=True, delay=1.5, method="usergroups.users.list")  # Slack slow to answer
        opening = asyncio.create_task(
            bot.slack_event({"type": "app_home_opened", "user": OTHER, "channel": "D1", "tab": "home"}))
        await asyncio.sleep(0.2)
        put(state, view.READERS, selected_users=[ADMIN])
        assert await submit(bot, state) == (200, {})
        assert not bot.deps.access.reads_revenue(OTHER, None)
        assert (await opening).status == 200
        await asyncio.sleep(3.0)  # the refresh round, then the open's own publish, then quiet
        calls = [(c.args.get("user_id"), "1,234.56" in json.dumps(c.args.get("view")))
                 for c in fake_slack.calls if c.method == "views.publish"]
        assert "1,234.56" not in shown(fake_slack, OTHER), \
            f"removed reader's Home shows the revenue (publishes: user, with figures = {calls})"


async def rate_limited_open(bot: Bot, slack: FakeSlack) -> Any:
    """The owner opens Home during a sale burst and Slack answers views.publish with 429, Retry-After: 3."""
    bot.deps.home.quiet, bot.deps.home.max_delay = 0.2, 0.5
    assert (await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))).status == 200
    slack.fail_next(1, status=429, retry_after=3, method="views.publish")
    await bot.slack_event({"type": "app_home_opened", "user": VIEWER, "channel": "D1", "tab": "home"})
    assert await until(lambda: any(c.method == "views.publish" and c.answered == 429 for c in slack.calls), 2)
    return next(c for c in slack.calls if c.method == "views.publish" and c.answered == 429)


def sent_after(slack: FakeSlack, limited: Any) -> list[Any]:
    return [c for c in slack.calls if c.method == "views.publish" and c.at > limited.at]


async def test_a_429_on_opening_home_is_respected_by_the_refresh_round(dsn: str, fake_slack: FakeSlack) -> None:
    """The refresh loop does not publish again after the quiet period, well inside the 3 s Slack asked it to wait;
    once they have passed, the owner's Home is published."""
    async with start_bot(dsn, fake_slack) as bot:
        limited = await rate_limited_open(bot, fake_slack)
        await asyncio.sleep(2.5)
        early = sent_after(fake_slack, limited)
        assert not early, (f"{len(early)} views.publish sent {(early[0].at - limited.at).total_seconds():.1f} s "
                           f"after a 429 that said Retry-After: 3")
        assert await until(lambda: views_of(fake_slack, VIEWER), 2)


async def test_a_click_on_home_during_retry_after_is_published_once_it_has_passed(
        dsn: str, fake_slack: FakeSlack) -> None:
    """A click on Home while Retry-After runs is applied at once, but its view waits until Slack allows it."""
    async with start_bot(dsn, fake_slack) as bot:
        alert_id = await firing_alert(bot.deps.pool)
        limited = await rate_limited_open(bot, fake_slack)
        assert (await bot.button("alert_ack", str(alert_id), user=VIEWER, view=True)).status == 200
        await asyncio.sleep(2.5)
        assert not sent_after(fake_slack, limited), "the click's view was published inside Retry-After"
        assert await until(lambda: "Acknowledged by <@U_OWNER>" in shown(fake_slack, VIEWER), 2)
