"""Slack Connect: people of another organisation see the bot's messages in a shared channel and can click their
buttons; "everyone" means everyone in the organisation that installed the app, so they are refused unless listed.

The payloads are shaped as Slack sends them there: `user.team_id` is the clicker's own workspace (or Enterprise Grid
organisation) and `team`/`enterprise` name the installation (slackapi/java-slack-sdk#1041); a slash command names
the workspace it was typed in (`team_id`, and `enterprise_id` on Grid)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.settings.change import save
from tests import test_access
from tests.conftest import Bot, FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.test_access import audit, firing_alert, state

clock = test_access.clock  # the access tests' clock: a Tuesday afternoon in New York

STORE, PARTNER = "T000", "T0PARTNER"  # the installing workspace (the fake's auth.test) and another organisation's
NOTHING_DONE = {"acknowledged_by": None, "silenced_by": None, "resolved_by": None, "resolved_at": None}


@dataclass
class GridSlack(FakeSlack):
    """The Web API for a workspace of an Enterprise Grid organisation: auth.test also names the organisation, and
    team.info places the store's workspace and its sister T0SISTER in it."""

    team_orgs: dict[str, str] = field(default_factory=lambda: {STORE: "E000", "T0SISTER": "E000"})

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        answer = super()._answer(method, args)
        return answer | {"enterprise_id": "E000"} if method == "auth.test" else answer


@pytest.fixture
async def grid_slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack whose workspace is part of the Enterprise Grid organisation E000."""
    fake = await GridSlack().start()
    try:
        yield fake
    finally:
        await fake.stop()


async def click(bot: Bot, action_id: str, value: str, *, user: str, user_team: str,
                enterprise: str | None = None, channel: str = "C0ALERTS", hook: str = "click") -> None:
    """A signed block_actions payload as Slack sends it from a shared channel: the clicker's own team on the user,
    the installation (and its Grid organisation, if any) in `team` and `enterprise`."""
    team: dict[str, Any] = {"id": STORE, "domain": "store"} | ({"enterprise_id": enterprise} if enterprise else {})
    payload = {"type": "block_actions", "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2",
               "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": user_team},
               "team": team, "enterprise": {"id": enterprise, "name": "Store Group"} if enterprise else None,
               "is_enterprise_install": False, "channel": {"id": channel, "name": "shared"},
               "container": {"type": "message", "message_ts": "1.000001", "channel_id": channel},
               "response_url": bot.slack_api.url.replace("/api/", f"/hooks/{hook}"),
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                            "action_ts": "1"}]}
    assert (await bot.slack({"payload": json.dumps(payload)})).status == 200


async def typed(bot: Bot, text: str, *, user: str, team: str, enterprise: str | None = None) -> str:
    """A signed slash command `/sales <text>` typed in workspace `team`; what the person reads in the answer."""
    form = {"command": "/sales", "text": text, "user_id": user, "user_name": user.lower(), "channel_id": "C0SHARED",
            "team_id": team, "team_domain": team.lower(), "token": "legacy", "trigger_id": "1.2.3",
            "api_app_id": "A1", "response_url": bot.slack_api.url.replace("/api/", "/hooks/resp")}
    if enterprise is not None:
        form |= {"enterprise_id": enterprise, "enterprise_name": "Some Group", "is_enterprise_install": "false"}
    resp = await bot.slack(form)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return json.dumps(body.get("blocks", []), ensure_ascii=False) + body.get("text", "")


async def hook_texts(bot: Bot, hook: str, *, count: int) -> list[str]:
    """What the bot answered through the response_url `hook`, once `count` answers came (listeners run after
    the ack)."""
    for _ in range(250):
        texts = [str(c.args.get("text")) for c in bot.slack_api.calls if c.method == f"hook:{hook}"]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} answers through {hook}")


async def test_a_person_of_another_organisation_cannot_act_on_alerts_unless_listed(
        dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> None:
    """ALERT_RESPONDERS unset ("everyone"): a partner's Resolve, Silence and Acknowledge from a shared channel are
    refused (ephemeral), recorded and change nothing; the store's own people still act; once an admin lists the
    partner by id, the partner may act too."""
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        alert_id, _ = await firing_alert(bot, clock, dsn)
        for action in ("alert_resolve", "alert_silence_1h", "alert_ack"):
            await click(bot, action, str(alert_id), user="UPARTNER", user_team=PARTNER)
        assert [row[2] for row in await audit(bot, alert_id, count=3)] == ["refused"] * 3
        assert await state(bot, alert_id) == NOTHING_DONE
        assert all("not allowed to act on alerts" in t for t in await hook_texts(bot, "click", count=3))
        assert [c.method for c in fake_slack.calls].count("auth.test") == 1  # asked once, then kept

        await click(bot, "alert_ack", str(alert_id), user="USTAFF", user_team=STORE)
        assert (await audit(bot, alert_id, count=4))[-1] == ("USTAFF", "ack", "applied", "slack")

        await save(bot.deps, user="UADMIN", values={"ALERT_RESPONDERS": ["UPARTNER"]})
        await click(bot, "alert_resolve", str(alert_id), user="UPARTNER", user_team=PARTNER)
        assert (await audit(bot, alert_id, count=5))[-1] == ("UPARTNER", "resolve", "applied", "slack")


async def test_while_slack_cannot_say_who_installed_the_app_the_payloads_word_decides(
        dsn: str, fake_slack: FakeSlack, clock: FakeClock) -> None:
    """auth.test fails (Slack's API unreachable): the installation the payload names stands in, so the partner is
    still refused and the store's people still act; Slack is not asked again on every click."""
    fake_slack.fail_next(1, status=500, method="auth.test")
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        alert_id, _ = await firing_alert(bot, clock, dsn)
        for action in ("alert_silence_1h", "alert_resolve"):
            await click(bot, action, str(alert_id), user="UPARTNER", user_team=PARTNER)
        assert [row[2] for row in await audit(bot, alert_id, count=2)] == ["refused"] * 2
        await click(bot, "alert_ack", str(alert_id), user="USTAFF", user_team=STORE)
        assert (await audit(bot, alert_id, count=3))[-1] == ("USTAFF", "ack", "applied", "slack")
        assert [(c.method, c.answered) for c in fake_slack.calls if c.method == "auth.test"] == [("auth.test", 500)]
        assert bot.deps.access.installation.known is None


async def test_on_enterprise_grid_another_workspace_of_the_organisation_is_inside(
        dsn: str, grid_slack: FakeSlack, clock: FakeClock) -> None:
    """The store's workspace is part of Grid organisation E000: someone whose team Slack gives as another
    organisation (E0PARTNER) is refused; someone of a sister workspace of E000 (another team id) still acts."""
    async with start_bot(dsn, grid_slack, clock=clock, STORE_TIMEZONE="America/New_York") as bot:
        alert_id, _ = await firing_alert(bot, clock, dsn)
        await click(bot, "alert_silence_1h", str(alert_id), user="WPARTNER", user_team="E0PARTNER",
                    enterprise="E000")
        assert await audit(bot, alert_id, count=1) == [("WPARTNER", "silence", "refused", "slack")]
        assert await state(bot, alert_id) == NOTHING_DONE

        await click(bot, "alert_ack", str(alert_id), user="WSISTER", user_team="T0SISTER", enterprise="E000")
        assert (await audit(bot, alert_id, count=2))[-1] == ("WSISTER", "ack", "applied", "slack")
        assert (await state(bot, alert_id))["acknowledged_by"] == "WSISTER"


async def test_share_is_refused_to_a_person_of_another_organisation(dsn: str, fake_slack: FakeSlack) -> None:
    """SLASH_COMMAND_ALLOWED_CHANNELS names the shared channel but no user list is set: a partner's Share there is
    refused and posts nothing; the store's own person shares."""
    async with start_bot(dsn, fake_slack, SLASH_COMMAND_ALLOWED_CHANNELS="C0SHARED") as bot:
        answer = await bot.command("/sales", "yesterday", user_id="USTAFF", channel_id="C0SHARED")
        [value] = [e["value"] for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
        await click(bot, "share_in_channel", value, user="UPARTNER", user_team=PARTNER, channel="C0SHARED",
                    hook="partner")
        await click(bot, "share_in_channel", value, user="USTAFF", user_team=STORE, channel="C0SHARED", hook="staff")
        assert await hook_texts(bot, "partner", count=1) == [
            "Sorry — the store's figures are only available to the people and channels the owner allowed."]
        await hook_texts(bot, "staff", count=1)
        staff = [c.args for c in fake_slack.calls if c.method == "hook:staff"]
        assert staff and staff[0]["response_type"] == "in_channel" and "Yesterday" in staff[0]["text"]


async def test_slash_commands_from_another_organisation_are_refused(dsn: str, grid_slack: FakeSlack,
                                                                    clock: FakeClock) -> None:
    """Slack offers a command only where the app is installed; once the bot knows its installation (asked when a
    partner first clicked in a shared channel), a command from another organisation's workspace gets the refusal
    and no dashboard link, while the store's workspace and a sister workspace of its Grid organisation get figures."""
    async with start_bot(dsn, grid_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         MONITORING_TOKEN="mon-token-123-very-secret") as bot:
        alert_id, _ = await firing_alert(bot, clock, dsn)
        await click(bot, "alert_ack", str(alert_id), user="WPARTNER", user_team="E0PARTNER", enterprise="E000")
        await audit(bot, alert_id, count=1)

        refusal = "only available to the people and channels the owner allowed"
        for text in ("", "link"):
            answer = await typed(bot, text, user="WPARTNER", team=PARTNER, enterprise="E0PARTNER")
            assert refusal in answer and "/dashboard/link/" not in answer and "Orders" not in answer
        for team in ("T000", "T0SISTER"):
            answer = await typed(bot, "", user="WSTAFF", team=team, enterprise="E000")
            assert refusal not in answer and "Orders" in answer
        assert "/dashboard/link/" in await typed(bot, "link", user="WSTAFF", team="T0SISTER", enterprise="E000")
