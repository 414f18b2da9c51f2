"""Which organisation a Slack request's actor belongs to, and which one installed the app (Slack Connect).

In a Slack Connect channel, people of another organisation see the bot's messages and can click their buttons.
A block_actions payload then says two things apart: `user.team_id` is the clicker's own workspace (or Enterprise
Grid organisation), while `team`, `enterprise` and a view's `app_installed_team_id` name the installation the
payload is for (slackapi/java-slack-sdk#1041; Bolt's `slack_bolt/request/internals.py` extract_team_id). A slash
command names only the workspace it was typed in: Slack offers a command only where the app is installed (from
another organisation's workspace it is "not a valid command", slackapi/bolt-python#767).

The installation itself is asked of Slack (auth.test) once: in the background after start-up (bot/slack_check.py,
which hands its answer over), else the first time a payload shows someone from another team — never before the bot
answers, nor on every request (the bot must start and answer while Slack's API is unreachable). Until Slack has
answered, the installation the payload names stands in.

On Enterprise Grid a payload may name only the clicker's workspace: a sister workspace of our organisation and a
Slack Connect partner's standalone workspace then look alike. Slack is asked which organisation that workspace
belongs to (team.info, scope team:read); until it has said ours, the person is outside (closed by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

ASK_SECONDS = 2.0  # auth.test is asked on a click's path (after the ack): Slack down must not hold it for long
RETRY_SECONDS = 60.0  # after a failed auth.test, the payloads' word stands in this long before Slack is asked again
# What team.info said of a workspace is kept this long: a workspace rarely changes organisation, but one moved out
# of ours must not stay inside for ever.
WORKSPACE_CACHE_SECONDS = 3600.0
# What /health and `salespulse check` say while team.info is refused for want of its scope (an install from before
# manifest.yml asked for it): only a reinstall grants a scope.
TEAM_READ_MISSING = ("Slack scope team:read missing: reinstall the app so people of your organisation's other"
                     " workspaces can act")


@dataclass(frozen=True, slots=True)
class Org:
    """A workspace (`T…`) and, on Enterprise Grid, its organisation (`E…`), as far as Slack said."""

    team_id: str | None = None
    enterprise_id: str | None = None

    @property
    def ids(self) -> frozenset[str]:
        """The ids Slack gave (none: nothing is known)."""
        return frozenset(i for i in (self.team_id, self.enterprise_id) if i)


@dataclass(frozen=True, slots=True)
class Affiliation:
    """Who sent a Slack request (`actor`) and the installation its payload is for."""

    actor: Org
    installation: Org


def outside(actor: Org, home: Org, *, team_org: str | None = None) -> bool:
    """Whether `actor` belongs to another organisation than `home`, or may (nothing known of either: no).

    On Enterprise Grid a person's team id may be the organisation's or any of its workspaces' (slackapi/bolt-js#1875),
    so there a workspace id other than ours is inside only when Slack said it is of our organisation (`team_org`:
    the organisation team.info gave for it, see `unplaced`); a partner's standalone workspace looks the same.
    """
    ours = home.ids
    if not ours or not actor.ids:
        return False
    if actor.enterprise_id is not None:
        return actor.enterprise_id not in ours
    team = actor.team_id
    if team is None or team in ours:
        return False
    # Another organisation's own id; any other workspace when ours stands alone (a workspace is its whole org);
    # on Grid, any workspace Slack has not said is one of ours.
    return team.startswith("E") or home.enterprise_id is None or team_org != home.enterprise_id


def unplaced(actor: Org, home: Org) -> str | None:
    """The workspace whose organisation Slack must name before `outside` can let `actor` in: another workspace
    than ours, the person's organisation unnamed, ours on Enterprise Grid (None: `outside` needs nothing more)."""
    team = actor.team_id
    if home.enterprise_id is None or actor.enterprise_id is not None or team is None or team in home.ids:
        return None
    return None if team.startswith("E") else team


def _id(value: Any) -> str | None:
    """An id Slack gives as a string or as an object with an `id`."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def of_action(body: Mapping[str, Any]) -> Affiliation:
    """From a block_actions payload: the clicker's `user.team_id`, and the installation the payload names."""
    user = body.get("user")
    own = _id(user.get("team_id")) if isinstance(user, Mapping) else None
    actor = Org(enterprise_id=own) if own is not None and own.startswith("E") else Org(team_id=own)
    view, team = body.get("view"), body.get("team")
    installed = (_id(view.get("app_installed_team_id")) if isinstance(view, Mapping) else None) or _id(team)
    enterprise = _id(body.get("enterprise")) or (_id(team.get("enterprise_id")) if isinstance(team, Mapping) else None)
    return Affiliation(actor=actor, installation=Org(team_id=installed, enterprise_id=enterprise))


def of_command(command: Mapping[str, Any]) -> Affiliation:
    """From a slash command: the workspace (and Grid organisation) it was typed in, which is also an installation."""
    org = Org(team_id=_id(command.get("team_id")), enterprise_id=_id(command.get("enterprise_id")))
    return Affiliation(actor=org, installation=org)


WhoAmI = Callable[[], Awaitable[Org]]


def auth_test(client: AsyncWebClient) -> WhoAmI:
    """The installation of the bot token, as Slack's auth.test says (`enterprise_id` only on Enterprise Grid)."""

    async def ask() -> Org:
        response = await client.auth_test()
        return Org(team_id=_id(response.get("team_id")), enterprise_id=_id(response.get("enterprise_id")))

    return ask


class Installation:
    """The organisation that installed the app: asked of Slack once, when first needed, then kept."""

    def __init__(self, ask: WhoAmI | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ask = ask
        self._clock = clock
        self._lock = asyncio.Lock()  # one auth.test at a time
        self._failed_at: float | None = None
        self.known: Org | None = None

    async def learn(self) -> Org | None:
        """What auth.test said; None while it is unknown (local mode, Slack unreachable: asked again later)."""
        if self.known is not None or self._ask is None:
            return self.known
        async with self._lock:
            now = self._clock()
            if self.known is not None or (self._failed_at is not None and now - self._failed_at < RETRY_SECONDS):
                return self.known
            try:
                async with asyncio.timeout(ASK_SECONDS):
                    found = await self._ask()
            except Exception as exc:  # noqa: BLE001  # any Slack or network failure means "not known yet"
                log.warning("could not ask Slack which workspace installed the app: %s", exc)
                self._failed_at = now
                return None
            if found.ids:
                self.known = found
            else:
                self._failed_at = now
            return self.known


TeamOrg = Callable[[str], Awaitable[str | None]]


def team_info(client: AsyncWebClient) -> TeamOrg:
    """The Enterprise Grid organisation a workspace belongs to, as Slack's team.info says (scope team:read; None: a
    standalone workspace)."""

    async def ask(team: str) -> str | None:
        response = await client.team_info(team=team)
        found = response.get("team")
        return _id(found.get("enterprise_id")) if isinstance(found, Mapping) else None

    return ask


class Workspaces:
    """Which organisation each workspace belongs to: asked of Slack when a payload first names it, kept for
    WORKSPACE_CACHE_SECONDS. A failed look-up is "unknown" — the person is then outside — and is not asked again
    for RETRY_SECONDS (every click of a partner would otherwise wait on Slack)."""

    def __init__(self, ask: TeamOrg | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ask = ask
        self._clock = clock
        self._known: dict[str, tuple[float, str | None]] = {}  # workspace → (when Slack said, its organisation)
        self._failed: dict[str, float] = {}  # workspace → when its last look-up failed
        self._locks: dict[str, asyncio.Lock] = {}  # one team.info per workspace at a time
        self.team_read_missing = False  # the last team.info answered missing_scope (shown until one succeeds)

    async def org_of(self, team: str) -> str | None:
        """The organisation Slack said `team` belongs to; None when it stands alone or Slack could not say."""
        async with self._locks.setdefault(team, asyncio.Lock()):
            now = self._clock()
            known = self._known.get(team)
            if known is not None and now - known[0] < WORKSPACE_CACHE_SECONDS:
                return known[1]
            if self._ask is None or now - self._failed.get(team, -RETRY_SECONDS) < RETRY_SECONDS:
                return None
            try:
                async with asyncio.timeout(ASK_SECONDS):
                    org = await self._ask(team)
            except Exception as exc:  # noqa: BLE001  # any Slack or network failure means "unknown": stay closed
                data = getattr(getattr(exc, "response", None), "data", None)  # Slack's error code, if it answered
                error = data.get("error") if isinstance(data, dict) else None
                log.warning("could not ask Slack which organisation workspace %s belongs to (%s): its people are"
                            " refused as of another organisation unless their user ids are listed; check the app's"
                            " team:read scope", team, error or exc)
                self.team_read_missing = self.team_read_missing or error == "missing_scope"
                self._failed[team] = now
                self._known.pop(team, None)
                return None
            self._failed.pop(team, None)
            self.team_read_missing = False
            self._known[team] = (now, org)
            return org
