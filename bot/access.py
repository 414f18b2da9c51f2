"""The one access policy: who reads revenue, who acts on alerts, who changes settings — on every surface.

Slash commands, Share, the App Home tab, dashboard links, alert buttons (in Slack, on Home and in the local
feed) and the Settings view all ask this module, so a door cannot be opened in one place and closed in another.

- Revenue: SLASH_COMMAND_ALLOWED_USERS and SLASH_COMMAND_ALLOWED_CHANNELS; each list that is set must hold the
  caller's id. Where there is no channel (App Home, dashboard), a channel list alone admits nobody: the door
  stays closed rather than opening because a check could not be made.
- Alerts: ALERT_RESPONDERS (user ids, or user group ids `S…` whose members Slack lists); unset → the revenue
  readers when a user list is set, else everyone in the workspace.
- Settings: SALESPULSE_ADMINS; unset → nobody.
- "Everyone" is everyone in the organisation that installed the app: someone Slack shows to be from another one
  (a Slack Connect channel, `bot/affiliation.py`), or does not show to be of ours (on Enterprise Grid, a workspace
  team.info has not placed in our organisation), reads revenue or acts on alerts only if their own id is listed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.affiliation import Affiliation, Installation, TeamOrg, WhoAmI, Workspaces, outside, unplaced
from bot.config import Settings
from bot.web.feed_door import exposure_warning

log = logging.getLogger(__name__)

# The owner at the local feed's keyboard (local mode only): the machine's user, not a Slack member, so no list
# applies. Lower case, so no Slack user id can ever equal it.
LOCAL_OWNER = "you"
GROUP_CACHE_SECONDS = 300.0  # usergroups.users.list is Tier 2 (20+/min); membership changes are rare
# While Slack cannot say, a known list stands in for this long (a blip), then nobody: someone removed from the
# group must not keep acting on alerts for as long as an outage lasts.
GROUP_STALE_SECONDS = 2 * GROUP_CACHE_SECONDS
# After a failed look-up, Slack is not asked again for this long: App Home asks for every viewer it refreshes, and
# a missing scope or an outage would otherwise cost a slow request each time (an alert click waiting behind them).
GROUP_RETRY_SECONDS = 60.0

GroupMembers = Callable[[str], Awaitable[frozenset[str]]]


def failure_reason(exc: BaseException) -> str:
    """A failed look-up in a few words: Slack's error code ("missing_scope", "no_such_subteam") when it answered
    one, else the kind of failure ("TimeoutError")."""
    data = getattr(getattr(exc, "response", None), "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return str(error)[:60] if error else type(exc).__name__


@dataclass(frozen=True, slots=True)
class GroupCheck:
    """A user group of ALERT_RESPONDERS as last looked up: its members, or why Slack could not list them."""

    group: str
    members: frozenset[str]
    error: str | None = None  # the last look-up failed (the members are then a stand-in, or nobody)


@dataclass(frozen=True, slots=True)
class AlertVerdict:
    """May this person act on alerts: `allowed`, or refused — and, when a user group they may belong to could not
    be listed, which (`unchecked`): then the refusal is "unknown", not "no". Truthy when allowed."""

    allowed: bool
    unchecked: tuple[GroupCheck, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(slots=True)
class _GroupCache:
    """Members of each user group, fetched at most every GROUP_CACHE_SECONDS."""

    fetch: GroupMembers | None
    clock: Callable[[], float] = time.monotonic
    entries: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    failed: dict[str, float] = field(default_factory=dict)  # when each group's last look-up failed
    errors: dict[str, str] = field(default_factory=dict)  # and why ("missing_scope"), until one succeeds
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)  # one look-up per group at a time

    async def members(self, group: str) -> frozenset[str]:
        """The group's members; on failure the last list known for under GROUP_STALE_SECONDS, else nobody (closed
        by default)."""
        async with self.locks.setdefault(group, asyncio.Lock()):
            return await self._members(group)

    async def _members(self, group: str) -> frozenset[str]:
        now = self.clock()
        cached = self.entries.get(group)
        if cached is not None and now - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        stale = cached[1] if cached is not None and now - cached[0] < GROUP_STALE_SECONDS else frozenset()
        if self.fetch is None or now - self.failed.get(group, -GROUP_RETRY_SECONDS) < GROUP_RETRY_SECONDS:
            return stale
        try:
            found = await self.fetch(group)
        except Exception as exc:  # noqa: BLE001  # any Slack or network failure means "unknown": stay closed
            log.warning("could not list the members of user group %s: %s", group, exc)
            self.failed[group] = now
            self.errors[group] = failure_reason(exc)
            return stale
        self.failed.pop(group, None)
        self.errors.pop(group, None)
        self.entries[group] = (now, found)
        return found


class AccessPolicy:
    """Answers "may this person do this here?" from Settings (and Slack, for user groups)."""

    def __init__(self, settings: Settings, *, group_members: GroupMembers | None = None,
                 installation: WhoAmI | None = None, team_orgs: TeamOrg | None = None) -> None:
        self.settings = settings
        self._groups = _GroupCache(group_members)
        self.installation = Installation(installation)
        self.workspaces = Workspaces(team_orgs)
        # Built once at start-up: where the local owner is trusted, say so if the bot is reachable from elsewhere.
        if (warning := exposure_warning(settings)) is not None:
            log.warning("%s", warning)

    def _owner(self, user_id: str | None) -> bool:
        return user_id == LOCAL_OWNER and self.settings.local_mode

    async def outsider(self, affiliation: Affiliation | None) -> bool:
        """Whether a Slack request's actor belongs to another organisation than the one that installed the app, or
        may (on Grid, a workspace Slack has not said is ours). Slack is asked who installed it only when the payload
        shows someone of another team, and which organisation that team is of only when the payload does not say."""
        if affiliation is None or not affiliation.actor.ids:
            return False
        home = self.installation.known
        if home is None and not affiliation.actor.ids <= affiliation.installation.ids:
            home = await self.installation.learn()
        home = home or affiliation.installation
        team = unplaced(affiliation.actor, home)
        team_org = await self.workspaces.org_of(team) if team is not None else None
        return outside(affiliation.actor, home, team_org=team_org)

    def reads_revenue(self, user_id: str | None, channel_id: str | None, *, outsider: bool = False) -> bool:
        """Whether this user, in this channel (None: a surface without one), may see revenue figures; an
        `outsider` (of another organisation) only when named in SLASH_COMMAND_ALLOWED_USERS."""
        if self._owner(user_id):
            return True
        users, channels = self.settings.slash_command_allowed_users, self.settings.slash_command_allowed_channels
        if outsider and user_id not in users:
            return False
        if channels and channel_id is None and not users:
            return False
        in_users = not users or user_id in users
        in_channels = not channels or channel_id is None or channel_id in channels
        return in_users and in_channels

    async def acts_on_alerts(self, user_id: str | None, *, outsider: bool = False) -> AlertVerdict:
        """Whether this user may acknowledge, silence or resolve alerts; an `outsider` (of another organisation)
        only when their own id is listed (a user group of ours does not vouch for them). Refused while a user
        group could not be listed, the verdict names it: closed, but "unknown" rather than "no"."""
        if self._owner(user_id):
            return AlertVerdict(True)
        if user_id is None:
            return AlertVerdict(False)
        responders = self.settings.alert_responders
        if outsider:
            return AlertVerdict(user_id in (responders or self.settings.slash_command_allowed_users))
        if not responders:
            users = self.settings.slash_command_allowed_users
            return AlertVerdict(not users or user_id in users)
        if user_id in responders:
            return AlertVerdict(True)
        unchecked = []
        for check in await self.responder_groups():
            if user_id in check.members:
                return AlertVerdict(True)
            if check.error is not None:
                unchecked.append(check)
        return AlertVerdict(False, tuple(unchecked))

    async def responder_groups(self) -> tuple[GroupCheck, ...]:
        """Each user group of ALERT_RESPONDERS with its members (cached; Slack asked when due) or its look-up's
        failure — what /health shows."""
        checks = []
        for group in (r for r in self.settings.alert_responders if r.startswith("S")):
            members = await self._groups.members(group)
            checks.append(GroupCheck(group, members, self._groups.errors.get(group)))
        return tuple(checks)

    def administers(self, user_id: str | None) -> bool:
        """Whether this user may open and change the Settings view."""
        return self._owner(user_id) or (user_id is not None and user_id in self.settings.salespulse_admins)
