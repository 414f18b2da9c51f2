"""The access review's five findings, each fixed: the local feed answers only a browser on its own machine; wrong
bearer tokens count in the sign-in limiter; an unlistable user group is said as such; `/sales link` works in a DM;
an admin who reads no revenue keeps the Settings button on App Home. Each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import settings as view
from bot.config import SettingsError, load_settings
from bot.home.publisher import HomePublisher
from bot.web.feed_door import FORWARDING_HEADERS, from_this_machine
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.conftest import FakeClock, paid_checkout, start_bot
from tests.fakes import FakeSlack
from tests.test_access import NOON, audit, firing_alert

TOKEN = "mon-token-123-very-secret"
INTAKE = "intake-token-456-also-secret"


# 1. The local feed: a browser on this machine only.

async def test_the_local_feed_does_not_serve_figures_to_clients_forwarded_by_a_proxy(
        dsn: str, fake_slack: FakeSlack) -> None:
    """Local mode watching a real store behind a reverse proxy (PUBLIC_URL set, so Stripe can reach it): the
    feed acts for the owner with no sign-in, so it must answer only on the bot's own machine — not to every
    client on the internet that the proxy forwards to PUBLIC_URL's host. The refusal says what to use instead."""
    async with start_bot(dsn, fake_slack, background_worker=True, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None,
                         PUBLIC_URL="https://sales.example", TRUSTED_PROXIES="127.0.0.1/32") as bot:
        assert bot.deps.settings.local_mode
        assert (await bot.stripe(paid_checkout(1, dt.datetime.now(dt.UTC), amount=123456))).status == 200
        remote = {"Host": "sales.example", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        page = await bot.client.get("/", headers=remote)
        answer = await bot.client.post("/feed/command", json={"line": "/sales", "channel": "sales"}, headers=remote)
        shown = await answer.text()
        settings = await bot.client.post("/feed/command", json={"line": "/sales settings", "channel": "sales"},
                                         headers=remote)
        assert "1,234.56" not in shown, shown[:300]
        assert (page.status, answer.status, settings.status) == (403, 403, 403)
        told = await page.text()
        assert "/dashboard" in told and "ssh -L" in told
        # A proxy that keeps the Host but adds no forwarding header: PUBLIC_URL's name is no longer trusted.
        assert (await bot.client.get("/", headers={"Host": "sales.example"})).status == 421
        # The browser on this machine still has the feed.
        assert (await bot.client.get("/")).status == 200
        mine = await bot.client.post("/feed/command", json={"line": "/sales", "channel": "sales"})
        assert mine.status == 200 and "1,234.56" in (await mine.json())["text"]


@pytest.mark.parametrize("header", FORWARDING_HEADERS)
async def test_any_forwarding_header_closes_the_feed(local_bot: Any, header: str) -> None:
    """Each header a proxy adds gives away a request from elsewhere, even from loopback: the page, its assets, the
    event stream, the command box and the buttons all refuse it (403)."""
    value = "for=203.0.113.9" if header == "Forwarded" else "203.0.113.9"
    for path in ("/", "/feed/static/feed.js", "/feed/events"):
        assert (await local_bot.client.get(path, headers={header: value})).status == 403, path
    for path, body in (("/feed/command", {"line": "/sales"}), ("/feed/action", {"action_id": "alert_ack"}),
                       ("/feed/view", {"values": {}})):
        assert (await local_bot.client.post(path, json=body, headers={header: value})).status == 403, path


@pytest.mark.parametrize(("peer", "headers", "served"), [
    ("127.0.0.1", {}, True), ("::1", {}, True), ("127.0.0.53", {}, True),
    ("203.0.113.9", {}, False), ("192.168.1.20", {}, False), ("10.0.0.5", {}, False),
    ("127.0.0.1", {"X-Real-IP": "203.0.113.9"}, False),
])
def test_only_a_loopback_peer_with_nothing_forwarded_is_this_machine(peer: str, headers: dict[str, str],
                                                                     served: bool) -> None:
    """A browser elsewhere on the network (HOST=0.0.0.0) reaches the bot from its own address: refused."""

    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (peer, 51000) if name == "peername" else default

    request = make_mocked_request("GET", "/", headers=headers, transport=Transport())
    assert from_this_machine(request) is served


@pytest.mark.parametrize(("env", "warned"), [
    ({}, False), ({"HOST": "0.0.0.0"}, True), ({"PUBLIC_URL": "https://sales.example"}, True),
    ({"HOST": "::1"}, False),
])
async def test_local_mode_reachable_from_elsewhere_warns_at_start_up(dsn: str, fake_slack: FakeSlack,
                                                                     caplog: pytest.LogCaptureFixture,
                                                                     env: dict[str, str], warned: bool) -> None:
    """Local mode on a non-loopback HOST, or with PUBLIC_URL set: a warning at start-up says the feed answers this
    machine only and where the figures are from elsewhere. On a laptop (`make run`, the demo) nothing is said."""
    with caplog.at_level(logging.WARNING):
        async with start_bot(dsn, fake_slack, SLACK_BOT_TOKEN=None, SLACK_SIGNING_SECRET=None, **env):
            pass
    said = [r.getMessage() for r in caplog.records if "local feed" in r.getMessage()]
    assert bool(said) is warned, said
    if warned:
        assert "/dashboard" in said[0] and "X-Forwarded-For" in said[0]


# 2. Wrong bearer tokens: one limiter with the sign-in form; tokens long and distinct.

async def test_guesses_at_the_monitoring_token_through_the_api_are_limited_like_the_sign_in_form(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The sign-in form judges 5 tokens per client in 15 min; the JSON API and /metrics take the same token as a
    bearer, so they must not judge guess after guess from that client either (else the form's limit buys
    nothing: a weak MONITORING_TOKEN falls to the API)."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN) as bot:
        statuses = []
        for n in range(20):
            path = "/metrics" if n % 2 else "/api/monitoring/sales"
            resp = await bot.client.get(path, headers={"Authorization": f"Bearer guess-{n}"})
            statuses.append(resp.status)
        assert statuses.count(401) <= 5 and statuses.count(429) >= 15, statuses
        assert int(resp.headers["Retry-After"]) > 0
        # and the sign-in form counts them as well: the same client is out of attempts there too
        form = await bot.client.post("/dashboard/login", data={"token": "guess-x"}, allow_redirects=False)
        assert form.status == 429
        # once out of attempts, the right token is not judged either: no answer tells a right guess from a wrong one
        right = await bot.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status == 429


async def test_the_form_guesses_count_against_the_api_and_a_missing_token_guesses_nothing(
        dsn: str, fake_slack: FakeSlack) -> None:
    """Five wrong tokens in the form close the API to that client too; requests that carry no token at all (a
    browser opening /metrics) are refused without spending anyone's attempts."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN) as bot:
        for _ in range(10):
            assert (await bot.client.get("/metrics")).status == 401
        assert (await bot.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
        for _ in range(5):
            form = await bot.client.post("/dashboard/login", data={"token": "nope"}, allow_redirects=False)
            assert form.status == 401
        api = await bot.client.get("/api/monitoring/health", headers={"Authorization": "Bearer nope"})
        assert api.status == 429 and "Retry-After" in api.headers


async def test_guesses_at_the_intake_token_are_limited_too(dsn: str, fake_slack: FakeSlack) -> None:
    """POST /webhooks/events takes INTAKE_TOKEN as a bearer through the same guard: the same limit, nothing
    stored."""
    async with start_bot(dsn, fake_slack, INTAKE_TOKEN=INTAKE) as bot:
        event = {"type": "error", "source": "shop", "message": "boom"}
        statuses = [(await bot.client.post("/webhooks/events", json=event,
                                           headers={"Authorization": f"Bearer guess-{n}"})).status for n in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM app_events") == 0


@pytest.mark.parametrize(("env", "named"), [
    ({"MONITORING_TOKEN": "mon-token-123"}, "MONITORING_TOKEN"),
    ({"INTAKE_TOKEN": "intake-token-6f1c"}, "INTAKE_TOKEN"),
    ({"MONITORING_TOKEN": TOKEN, "INTAKE_TOKEN": TOKEN}, "INTAKE_TOKEN"),
])
def test_a_short_or_shared_token_is_refused_at_start_up_naming_the_setting(
        env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Under 24 characters, or INTAKE_TOKEN equal to MONITORING_TOKEN: one line naming the setting, never the
    value; `salespulse check` (and run) stop there with exit 1."""
    from bot.cli.main import main

    monkeypatch.chdir(tmp_path)  # no .env of the machine's
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    said = str(info.value)
    assert said.startswith(f"invalid setting {named}:") and "\n" not in said
    assert all(value not in said for value in env.values())
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert f"invalid setting {named}" in err and all(value not in err for value in env.values())
    monkeypatch.setenv("MONITORING_TOKEN", TOKEN)
    monkeypatch.setenv("INTAKE_TOKEN", INTAKE)
    assert load_settings().intake_token is not None  # long and distinct: accepted


# 3. A user group Slack cannot list: "unknown", said as such.

async def test_a_responder_is_not_told_they_are_not_allowed_when_slack_cannot_list_their_group(
        dsn: str, fake_slack: FakeSlack) -> None:
    """ALERT_RESPONDERS names a user group and Slack refuses usergroups.users.list (an app installed before the
    usergroups:read scope, a group id mistyped): the on-call member's click is refused — closed is right — but
    telling them "you're not allowed … ask the store's owner to add you" sends them to the owner about a list they
    are on; the answer must say the group could not be checked."""
    clock = FakeClock(NOON)
    fake_slack.usergroups = {"S0ONCALL": ["UMEMBER"]}
    fake_slack.fail_next(1, error="missing_scope", method="usergroups.users.list")
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         ALERT_RESPONDERS="S0ONCALL") as bot:
        alert_id, jobs = await firing_alert(bot, clock, dsn)
        assert (await bot.button("alert_ack", str(alert_id), user="UMEMBER")).status == 200
        assert [(r[0], r[2]) for r in await audit(bot, alert_id, count=1)] == [("UMEMBER", "refused")]
        for _ in range(250):
            if told := [c.args for c in fake_slack.calls if c.method == "hook:click"]:
                break
            await asyncio.sleep(0.02)
        await jobs.leadership.release()
        assert told, fake_slack.calls
        text = told[-1]["text"]
        assert "add you" not in text and "user group S0ONCALL" in text and "missing_scope" in text, text
        assert_valid_message(told[-1])
        # /health says it too, for the owner
        health = json.dumps(await bot.command("/health"))
        assert "Alert responders" in health and "S0ONCALL" in health and "missing_scope" in health, health


async def test_someone_outside_a_group_slack_lists_is_still_told_no(dsn: str, fake_slack: FakeSlack) -> None:
    """The group listed fine: a non-member gets the plain "not allowed"; /health shows the group and its size."""
    clock = FakeClock(NOON)
    fake_slack.usergroups = {"S0ONCALL": ["UMEMBER", "UOTHER"]}
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         ALERT_RESPONDERS="S0ONCALL") as bot:
        alert_id, jobs = await firing_alert(bot, clock, dsn)
        await bot.button("alert_ack", str(alert_id), user="USTRANGER")
        await audit(bot, alert_id, count=1)
        for _ in range(250):
            if told := [c.args["text"] for c in fake_slack.calls if c.method == "hook:click"]:
                break
            await asyncio.sleep(0.02)
        await jobs.leadership.release()
        assert told and "not allowed to act on alerts" in told[-1]
        health = await bot.command("/health")
        assert_valid_message(health)
        assert "S0ONCALL 2 members" in json.dumps(health)


async def test_check_reports_a_user_group_slack_cannot_list(dsn: str, fake_slack: FakeSlack,
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse check` lists each ALERT_RESPONDERS group as the bot will, and exits 1 naming Slack's error."""
    from bot.cli.main import main

    monkeypatch.chdir(tmp_path)
    for name, value in {"DATABASE_URL": dsn, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s",
                        "SLACK_API_URL": fake_slack.url, "ALERT_RESPONDERS": "S0ONCALL,S0TYPO"}.items():
        monkeypatch.setenv(name, value)
    fake_slack.usergroups = {"S0ONCALL": ["UMEMBER"]}
    assert await asyncio.to_thread(main, ["check"]) == 1
    out = capsys.readouterr().out
    assert "responders S0ONCALL:  ok — 1 member" in out
    assert "responders S0TYPO:  PROBLEM" in out and "no_such_subteam" in out, out


# 4. `/sales link` in a DM.

async def test_a_reader_gets_a_dashboard_link_wherever_they_type_it(dsn: str, fake_slack: FakeSlack) -> None:
    """SECURITY.md: `/sales link` is for "revenue readers wherever they are" (the dashboard has no channel). With
    both lists set, a listed reader asking in their DM with the bot — the private place to ask for a sign-in link —
    must get it; someone not listed is still refused there, and /sales itself stays in the listed channels."""
    async with start_bot(dsn, fake_slack, SLASH_COMMAND_ALLOWED_CHANNELS="C0SALES", MONITORING_TOKEN=TOKEN,
                         SLASH_COMMAND_ALLOWED_USERS="UBOSS") as bot:
        assert "/dashboard/link/" in json.dumps(await bot.command("/sales", "link", user_id="UBOSS",
                                                                  channel_id="C0SALES"))
        in_dm = json.dumps(await bot.command("/sales", "link", user_id="UBOSS", channel_id="D0BOSS"))
        assert "/dashboard/link/" in in_dm, in_dm
        stranger = json.dumps(await bot.command("/sales", "link", user_id="USTRANGER", channel_id="D0STRANGER"))
        assert "/dashboard/link/" not in stranger and "only available to the people" in stranger
        figures = json.dumps(await bot.command("/sales", user_id="UBOSS", channel_id="D0BOSS"))
        assert "only available to the people" in figures


# 5. An admin who reads no revenue keeps the Settings button.

async def test_an_admin_who_does_not_read_revenue_still_gets_the_settings_button_on_home(
        dsn: str, fake_slack: FakeSlack) -> None:
    """SALESPULSE_ADMINS names someone outside SLASH_COMMAND_ALLOWED_USERS (an office manager who runs the
    settings, not the figures): their Home tab has no figures, but the README's way in for admins — the Settings
    button on App Home — must be there; a non-admin non-reader gets no such button."""
    async with start_bot(dsn, fake_slack, SLASH_COMMAND_ALLOWED_USERS="UBOSS", SALESPULSE_ADMINS="UADMIN") as bot:
        await bot.deps.home.publish(["UADMIN", "USTRANGER"])
        views = {c.args["user_id"]: c.args["view"] for c in fake_slack.calls if c.method == "views.publish"}
        for user, expected in (("UADMIN", True), ("USTRANGER", False)):
            published: dict[str, Any] = json.loads(views[user]) if isinstance(views[user], str) else views[user]
            assert "only shown to the people" in json.dumps(published)  # no figures: right
            ids = [e.get("action_id") for b in published["blocks"] if b["type"] == "actions" for e in b["elements"]]
            assert (view.OPEN_ACTION in ids) is expected, (user, published)
            assert_valid_view(published)


async def test_the_publisher_gives_the_locked_view_its_settings_button_for_admins(fake_slack: FakeSlack) -> None:
    """The publisher itself: `may_administer` adds the button to the locked view, and only there it is missing
    otherwise; readers get the live view whatever they administer."""
    home = HomePublisher(client=AsyncWebClient(token="xoxb-test", base_url=fake_slack.url))

    async def render(buttons: bool) -> dict[str, Any]:
        return {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "figures"}}]}

    async def never(_user: str) -> bool:
        return False

    home.bind(render, restricted={"type": "home", "blocks": []}, may_see=lambda user: user == "UREADER",
              may_act=never, may_administer=lambda user: user in ("UADMIN", "UREADER"))
    await home.publish(["UADMIN", "UOTHER", "UREADER"])
    views = {c["user_id"]: c["view"] for c in fake_slack.posted("views.publish")}
    parsed = {user: json.loads(v) if isinstance(v, str) else v for user, v in views.items()}
    assert [b["type"] for b in parsed["UADMIN"]["blocks"]] == ["actions"]
    assert parsed["UOTHER"]["blocks"] == []
    assert "figures" in json.dumps(parsed["UREADER"])



async def test_wrong_guesses_at_one_token_do_not_shut_another_tokens_door(dsn: str, fake_slack: FakeSlack) -> None:
    """(found by the review of the day's diff) The owner rotates MONITORING_TOKEN; Prometheus, on the same host as
    the store's app, scrapes /metrics with the old one. Its guesses are counted against MONITORING_TOKEN only: the
    app's right INTAKE_TOKEN still gets in, while /metrics itself answers 429 after five."""
    monitoring, intake = "mon-token-123-very-secret", "intake-token-456-also-secret"
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=monitoring, INTAKE_TOKEN=intake) as bot:
        for _ in range(5):
            assert (await bot.client.get("/metrics", headers={"Authorization": "Bearer old-token"})).status == 401
        assert (await bot.client.get("/metrics", headers={"Authorization": f"Bearer {monitoring}"})).status == 429
        event = {"type": "error", "source": "shop", "message": "payment provider timeout"}
        resp = await bot.client.post("/webhooks/events", json=event, headers={"Authorization": f"Bearer {intake}"})
        assert resp.status == 200, (resp.status, await resp.text())
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM app_events") == 1
