"""The configured Slack channels as Slack sees them: ids, public or private, whether the bot is in them.

`chat:write.public` lets the bot post to a public channel it never joined, but not read it back
(`conversations.history` → `not_in_channel`) nor share a file there (`files.completeUploadExternal` →
`not_in_channel`): https://docs.slack.dev/reference/scopes/chat.write.public. So at start-up the bot
resolves the configured names to ids once (`conversations.list`, scopes `channels:read`, `groups:read`)
and joins the public ones (`conversations.join`, scope `channels:join`); on a later `not_in_channel` it
joins and retries once. A private channel cannot be joined (`method_not_supported_for_channel_type`) and
is invisible to a bot that is not in it (`channel_not_found`): someone has to `/invite @salespulse`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.senders import slack_error

log = logging.getLogger(__name__)

BOT_MENTION: Final = "@salespulse"  # the bot user's display name in manifest.yml
LIST_PAGE: Final = 1000  # conversations.list's largest page
MAX_LIST_PAGES: Final = 50  # 50 000 channels: a bound, not a real workspace


class Membership(StrEnum):
    """What the bot can do in a configured channel."""

    MEMBER = "member"  # post, read back, upload
    PUBLIC_NOT_JOINED = "public_not_joined"  # post (chat:write.public); joins on first read or upload
    JOIN_FAILED = "join_failed"  # public, but conversations.join was refused: posts only
    PRIVATE_NOT_MEMBER = "private_not_member"  # known private, the bot is not (or no longer) in it
    NOT_VISIBLE = "not_visible"  # no such channel, or private without the bot: Slack cannot tell them apart
    ARCHIVED = "archived"
    UNKNOWN = "unknown"  # not checked yet, or Slack could not be asked


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One configured channel (sales, alerts or reports) and the bot's standing in it."""

    logical: str
    configured: str  # SLACK_*_CHANNEL as set: a name or an id
    membership: Membership = Membership.UNKNOWN
    channel_id: str | None = None
    name: str | None = None
    error: str | None = None  # Slack's error behind JOIN_FAILED or UNKNOWN

    @property
    def label(self) -> str:
        """`#name` when known, else the configured value."""
        return f"#{self.name}" if self.name else self.configured

    @property
    def usable(self) -> bool:
        """Whether messages reach the channel (the bot may still have to join it first)."""
        return self.membership in (Membership.MEMBER, Membership.PUBLIC_NOT_JOINED, Membership.JOIN_FAILED)

    def describe(self) -> str:
        """Why the bot can (or cannot) use the channel, and what to do about it."""
        invite = f"/invite {BOT_MENTION}"
        return {
            Membership.MEMBER: f"{self.label}: the bot is a member",
            Membership.PUBLIC_NOT_JOINED: f"{self.label} is public, not joined: will join at start-up or on first use",
            Membership.JOIN_FAILED: f"{self.label} is public but the bot could not join ({self.error}): posts"
                                    f" work, look-ups and charts do not — {invite}",
            Membership.PRIVATE_NOT_MEMBER: f"{self.label} is private and the bot is not a member: {invite}",
            Membership.NOT_VISIBLE: f"{self.label}: channel not found — if it is private, the bot is not a"
                                    f" member: {invite}",
            Membership.ARCHIVED: f"{self.label} is archived: unarchive it or configure another channel",
            Membership.UNKNOWN: f"{self.label}: not checked yet" + (f" ({self.error})" if self.error else ""),
        }[self.membership]


def _matches(configured: str, channel: Mapping[str, Any]) -> bool:
    return configured in (channel.get("id"), f"#{channel.get('name')}", channel.get("name"))


def _standing(status: ChannelStatus, channel: Mapping[str, Any]) -> ChannelStatus:
    """The status a conversations.list (or .info, .join) channel object gives."""
    if channel.get("is_archived"):
        membership = Membership.ARCHIVED
    elif channel.get("is_member"):
        membership = Membership.MEMBER
    elif channel.get("is_private"):
        membership = Membership.PRIVATE_NOT_MEMBER
    else:
        membership = Membership.PUBLIC_NOT_JOINED
    return replace(status, membership=membership, channel_id=channel.get("id"), name=channel.get("name"),
                   error=None)


class ChannelDirectory:
    """The bot's view of its configured channels; joins public ones and remembers why others fail."""

    def __init__(self, client: AsyncWebClient, configured: Mapping[str, str]) -> None:
        self._client = client
        self._status = {logical: ChannelStatus(logical, value) for logical, value in configured.items()}
        self._private: set[str] = set()  # ids seen private: a later channel_not_found there means "not invited"

    def reconfigure(self, configured: Mapping[str, str]) -> bool:
        """Channels changed from Slack's Settings view: forget what was known of the replaced ones. True when
        something changed (then `start()` resolves and joins them again)."""
        changed = False
        for logical, value in configured.items():
            status = self._status.get(logical)
            if status is None or status.configured != value:
                self._status[logical] = ChannelStatus(logical, value)
                changed = True
        return changed

    def statuses(self) -> tuple[ChannelStatus, ...]:
        """Every configured channel, in configuration order."""
        return tuple(self._status.values())

    def find(self, channel: str) -> ChannelStatus | None:
        """The configured channel with this logical name, configured value or Slack id."""
        if channel in self._status:
            return self._status[channel]
        return next((s for s in self._status.values() if channel in (s.configured, s.channel_id)), None)

    async def start(self) -> None:
        """At start-up: resolve names to ids once, then join every public channel the bot is not in."""
        await self.resolve()
        for status in self.statuses():
            if status.membership is Membership.PUBLIC_NOT_JOINED and status.channel_id:
                await self.join(status.channel_id)

    async def resolve(self) -> None:
        """Look every configured channel up in conversations.list (public ones, and private ones the bot is in)."""
        pending = dict(self._status)
        cursor: str | None = None
        try:
            for _ in range(MAX_LIST_PAGES):
                page: Any = await self._client.conversations_list(
                    types="public_channel,private_channel", limit=LIST_PAGE, cursor=cursor)
                for channel in page.get("channels") or []:
                    if channel.get("is_private") and channel.get("id"):
                        self._private.add(str(channel["id"]))
                    for logical, status in list(pending.items()):
                        if _matches(status.configured, channel):
                            self._status[logical] = _standing(status, channel)
                            del pending[logical]
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor or not pending:
                    break
        except SlackApiError as exc:
            self._unknown(pending, f"conversations.list: {slack_error(exc)}")
            return
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._unknown(pending, f"conversations.list: {type(exc).__name__}")
            return
        for logical, status in pending.items():
            self._status[logical] = replace(status, membership=Membership.NOT_VISIBLE)

    def _unknown(self, pending: Mapping[str, ChannelStatus], error: str) -> None:
        log.warning("cannot list Slack channels (%s): channel membership unknown until first use", error)
        for logical, status in pending.items():
            self._status[logical] = replace(status, membership=Membership.UNKNOWN, error=error)

    async def join(self, channel_id: str) -> str | None:
        """conversations.join; None once the bot is in the channel, else Slack's reason (recorded)."""
        try:
            resp: Any = await self._client.conversations_join(channel=channel_id)
        except SlackApiError as exc:
            error = slack_error(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        else:
            log.info("joined Slack channel %s", channel_id)
            channel = resp.get("channel") or {"id": channel_id}
            for status in self.statuses():
                if status.channel_id == channel_id or _matches(status.configured, channel):
                    self._status[status.logical] = _standing(status, {**channel, "is_member": True})
            return None
        log.warning("could not join Slack channel %s: %s", channel_id, error)
        self._update(channel_id, lambda s: self._refused(s, error))
        return error

    def _refused(self, status: ChannelStatus, error: str) -> ChannelStatus:
        if error == "method_not_supported_for_channel_type" or \
                (error in ("channel_not_found", "not_in_channel") and status.channel_id in self._private):
            membership = Membership.PRIVATE_NOT_MEMBER
        elif error == "channel_not_found":
            membership = Membership.NOT_VISIBLE
        elif error in ("is_archived", "channel_is_archived"):
            membership = Membership.ARCHIVED
        else:
            membership = Membership.JOIN_FAILED
        return replace(status, membership=membership, error=error)

    def note_refusal(self, channel: str, error: str) -> None:
        """A post was refused (channel_not_found, is_archived): remember why, for /health."""
        self._update(channel, lambda s: self._refused(s, error))

    async def note_delivered(self, channel: str, channel_id: str | None) -> None:
        """A post to the configured channel went through: whatever /health said kept the bot out is fixed. Only a
        channel recorded as refusing changes, and its standing is asked of Slack once (conversations.info): one not
        found may be a private channel the bot was invited to since, or a public one created since, which takes
        posts by chat:write.public without the bot in it. When Slack cannot say: a member if it is known private
        (only an invitation lets the bot post there), else public, not joined (joined on its first read)."""
        status = self.find(channel)
        if status is None or status.membership not in (Membership.PRIVATE_NOT_MEMBER, Membership.NOT_VISIBLE,
                                                       Membership.ARCHIVED):
            return
        known = channel_id or status.channel_id
        log.info("Slack channel %s takes posts again", status.label)
        info = await self._info(known) if known else None
        if self._status.get(status.logical) is not status:  # reconfigured, or noted by another post, meanwhile
            return
        if info is not None:
            if info.get("is_private"):
                self._private.add(str(known))
            self._status[status.logical] = _standing(status, {"id": known, **info})
            return
        member = status.membership is Membership.PRIVATE_NOT_MEMBER or known in self._private
        self._status[status.logical] = replace(
            status, membership=Membership.MEMBER if member else Membership.PUBLIC_NOT_JOINED, channel_id=known,
            error=None)

    async def _info(self, channel_id: str) -> Mapping[str, Any] | None:
        """conversations.info's channel object (None: Slack could not be asked)."""
        try:
            resp: Any = await self._client.conversations_info(channel=channel_id)
        except SlackApiError as exc:
            log.warning("conversations.info %s: %s", channel_id, slack_error(exc))
            return None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("conversations.info %s: %s", channel_id, type(exc).__name__)
            return None
        channel = resp.get("channel")
        return channel if isinstance(channel, dict) else None

    def _update(self, channel: str, change: Callable[[ChannelStatus], ChannelStatus]) -> None:
        status = self.find(channel)
        if status is not None:
            self._status[status.logical] = change(status)

    def explain(self, channel: str, error: str) -> str:
        """Slack's error, followed by what the operator should do when the channel is a configured one."""
        status = self.find(channel)
        return error if status is None else f"{error}: {status.describe()}"
