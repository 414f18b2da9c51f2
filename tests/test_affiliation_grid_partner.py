"""On Enterprise Grid a block_actions payload may name only the clicker's workspace (`user.team_id = T…`): a sister
workspace of the store's organisation and a Slack Connect partner's standalone workspace then look alike. Slack
(team.info) says which organisation such a workspace belongs to; until it has said ours, the person is outside.

The store's workspace T000 is in organisation E000 (GridSlack: auth.test names it, team.info places T000 and
T0SISTER in it); T0PARTNER is a partner company's plain workspace (team.info gives it no enterprise_id)."""

from __future__ import annotations

import pytest

from tests import test_access
from tests.conftest import FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.test_access import audit, firing_alert, state
from tests.test_slack_connect import NOTHING_DONE, click, grid_slack, hook_texts  # noqa: F401  # grid_slack: a fixture

clock = test_access.clock  # a Tuesday afternoon in New York, inside business hours

REFUSED = "not allowed to act on alerts here. Ask the store's owner to add you."


def asked(fake: FakeSlack) -> list[str]:
    """The workspaces team.info was asked about."""
    return [str(c.args.get("team")) for c in fake.calls if c.method == "team.info"]


async def test_on_grid_a_partner_from_a_standalone_workspace_is_an_outsider(
        dsn: str, grid_slack: FakeSlack, clock: FakeClock) -> None:  # noqa: F811  # the fixture imported above
    """The store is on Enterprise Grid (E000) and shares #system-alerts with a partner company whose Slack is a
    plain workspace (T0PARTNER, no Grid: its members' `user.team_id` can only be that T id). No lists are set, so
    "everyone" is everyone of E000 (CONTRACT/SECURITY: people of another organisation act only if their own id is
    listed). The partner's Resolve must be refused and change nothing."""
    async with start_bot(dsn, grid_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        alert_id, jobs = await firing_alert(bot, clock, dsn)
        await click(bot, "alert_resolve", str(alert_id), user="UPARTNER", user_team="T0PARTNER", enterprise="E000")
        rows = await audit(bot, alert_id, count=1)
        await jobs.leadership.release()
        assert rows == [("UPARTNER", "resolve", "refused", "slack")], rows
        assert await state(bot, alert_id) == NOTHING_DONE
        assert REFUSED in (await hook_texts(bot, "click", count=1))[0]
        assert asked(grid_slack) == ["T0PARTNER"]


async def test_on_grid_a_partner_from_a_standalone_workspace_cannot_share_figures(
        dsn: str, grid_slack: FakeSlack) -> None:  # noqa: F811  # the fixture imported above
    """The same partner's Share in a channel the owner allowed (no user list) is refused and posts nothing, as it
    is to a partner whose payload names their own organisation."""
    async with start_bot(dsn, grid_slack, SLASH_COMMAND_ALLOWED_CHANNELS="C0SHARED") as bot:
        answer = await bot.command("/sales", "yesterday", user_id="USTAFF", channel_id="C0SHARED")
        [value] = [e["value"] for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
        await click(bot, "share_in_channel", value, user="UPARTNER", user_team="T0PARTNER", enterprise="E000",
                    channel="C0SHARED", hook="partner")
        assert await hook_texts(bot, "partner", count=1) == [
            "Sorry — the store's figures are only available to the people and channels the owner allowed."]


async def test_on_grid_a_sister_workspace_is_inside_once_slack_places_it_in_our_organisation(
        dsn: str, grid_slack: FakeSlack, clock: FakeClock) -> None:  # noqa: F811  # the fixture imported above
    """Someone of T0SISTER, a sister workspace of E000, acts on the alert: Slack is asked which organisation
    T0SISTER belongs to once, and its answer is kept for the next click."""
    async with start_bot(dsn, grid_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        alert_id, jobs = await firing_alert(bot, clock, dsn)
        await click(bot, "alert_ack", str(alert_id), user="WSISTER", user_team="T0SISTER", enterprise="E000")
        await click(bot, "alert_resolve", str(alert_id), user="WSISTER", user_team="T0SISTER", enterprise="E000")
        rows = await audit(bot, alert_id, count=2)
        await jobs.leadership.release()
        assert rows == [("WSISTER", "ack", "applied", "slack"), ("WSISTER", "resolve", "applied", "slack")]
        assert (await state(bot, alert_id))["resolved_by"] == "WSISTER"
        assert asked(grid_slack) == ["T0SISTER"]


@pytest.mark.parametrize("error", ["missing_scope", "team_not_found"])
async def test_on_grid_a_workspace_slack_cannot_place_is_outside(
        dsn: str, grid_slack: FakeSlack, clock: FakeClock, error: str) -> None:  # noqa: F811  # the fixture imported above
    """team.info fails (an install from before the app asked for team:read; an id Slack will not look up): the
    person is refused as of another organisation — told to ask the owner to add them — and nothing changes; Slack
    is not asked again on the next click a moment later."""
    grid_slack.fail_next(1, error=error, method="team.info")
    async with start_bot(dsn, grid_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        alert_id, jobs = await firing_alert(bot, clock, dsn)
        await click(bot, "alert_silence_1h", str(alert_id), user="WSISTER", user_team="T0SISTER", enterprise="E000")
        await click(bot, "alert_resolve", str(alert_id), user="WSISTER", user_team="T0SISTER", enterprise="E000")
        rows = await audit(bot, alert_id, count=2)
        await jobs.leadership.release()
        assert rows == [("WSISTER", "silence", "refused", "slack"), ("WSISTER", "resolve", "refused", "slack")]
        assert await state(bot, alert_id) == NOTHING_DONE
        assert all(REFUSED in t for t in await hook_texts(bot, "click", count=2))
        assert asked(grid_slack) == ["T0SISTER"]
