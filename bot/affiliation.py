"""Which organisation a Slack request's actor belongs to, and which one installed the app (Slack Connect).

In a Slack Connect channel, people of another organisation see the bot's messages and can click their buttons.
A block_actions payload then says two things apart: `user.team_id` is the clicker's own workspace (or Enterprise
Grid organisation), while `team`, `enterprise` and a view's `app_installed_team_id` name the installation the
payload is for (slackapi/java-slack-sdk#1041; Bolt's `slack_bolt/request/internals.py` extract_team_id). A slash
command names only the workspace it was typed in: Slack offers a command only where the app is installed (from
another organisation's workspace it is "not a valid command", slackapi/bolt-python#767).

The installation itself is asked of Slack (auth.test) once, the first time a payload shows someone from another
team — never at start-up or on every request (`bot/slack_app.py`: the bot must start and answer while Slack's API
is unreachable). Until Slack has answered, the installation the payload names stands in.
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


def outside(actor: Org, home: Org) -> bool:
    """Whether `actor` positively belongs to another organisation than `home` (nothing known: no).

    On Enterprise Grid a person's team id may be the organisation's or any of its workspaces' (slackapi/bolt-js#1875),
    so there a workspace id other than ours proves nothing unless Slack also names the person's organisation.
    """
    ours = home.ids
    if not ours or not actor.ids:
        return False
    if actor.enterprise_id is not None:
        return actor.enterprise_id not in ours
    team = actor.team_id
    if team is None or team in ours:
        return False
    # Another organisation's own id; or any other workspace, when ours stands alone (a workspace is its whole org).
    return team.startswith("E") or home.enterprise_id is None


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
