"""A configured Slack channel's standing as the bot knows it: what it can do there, and what to tell the operator."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from bot.delivery.senders import Status, classify_error

BOT_MENTION: Final = "@salespulse"  # the bot user's display name in manifest.yml
NO_ANSWER: Final = "no answer"  # begins the error of a join Slack never answered (a timeout, the network)
# A post or share refused at a channel's id: no channel there (invalid_channel is files.completeUploadExternal's:
# https://docs.slack.dev/reference/methods/files.completeUploadExternal), or it is archived.
NOT_FOUND: Final = frozenset({"channel_not_found", "invalid_channel"})
ARCHIVED_ERRORS: Final = frozenset({"is_archived", "channel_is_archived"})


class Membership(StrEnum):
    """What the bot can do in a configured channel."""

    MEMBER = "member"  # post, read back, upload
    PUBLIC_NOT_JOINED = "public_not_joined"  # post (chat:write.public); joins on first read or upload
    JOIN_FAILED = "join_failed"  # public, but conversations.join was refused: posts only
    PRIVATE_NOT_MEMBER = "private_not_member"  # known private, the bot is not (or no longer) in it
    NOT_VISIBLE = "not_visible"  # no such channel, or private without the bot: Slack cannot tell them apart
    ARCHIVED = "archived"
    UNKNOWN = "unknown"  # not checked yet, or Slack could not be asked


MEMBERSHIPS: Final = {m.value: m for m in Membership}


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One configured channel (sales, alerts or reports) and the bot's standing in it."""

    logical: str
    configured: str  # SLACK_*_CHANNEL as set: a name or an id
    membership: Membership = Membership.UNKNOWN
    channel_id: str | None = None
    name: str | None = None
    error: str | None = None  # Slack's error behind JOIN_FAILED or UNKNOWN
    learned_at: dt.datetime | None = None  # when stored (the database's clock); None: not stored yet, or never known

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
        if self.membership is Membership.JOIN_FAILED and temporary(self.error):
            return self._join_again()
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

    def _join_again(self) -> str:
        """A join failed for Slack's own trouble: no invitation fixes that; the next post that goes through joins."""
        error = self.error or ""
        why = f"no answer from Slack{error.removeprefix(NO_ANSWER)}".rstrip(": ") if error.startswith(NO_ANSWER) \
            else f"Slack: {error}"
        return (f"{self.label} is public but the bot could not join yet ({why}); trying again with the next post"
                " (posts work meanwhile, look-ups and charts wait for the join)")


def matches(configured: str, channel: Mapping[str, Any]) -> bool:
    """Whether a Slack channel object is the one configured (by id, `#name` or name)."""
    return configured in (channel.get("id"), f"#{channel.get('name')}", channel.get("name"))


def standing(status: ChannelStatus, channel: Mapping[str, Any]) -> ChannelStatus:
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


REFUSING: Final = (Membership.PRIVATE_NOT_MEMBER, Membership.NOT_VISIBLE, Membership.ARCHIVED)


def unresolved(status: ChannelStatus) -> bool:
    """conversations.list could not be asked about it (not merely: start-up has not got to it yet)."""
    return status.membership is Membership.UNKNOWN and status.error is not None


def temporary(error: str | None) -> bool:
    """Whether a join failed for Slack's trouble or the network's (a 5xx, ratelimited, service_unavailable, no answer),
    not because the channel or the token refuses it: worth trying again once Slack answers."""
    return error is not None and (error.startswith(NO_ANSWER) or classify_error(error) is Status.TRANSIENT)


def by_name(configured: str) -> bool:
    """Whether the channel is configured by name (`#sales`), which may mean another channel later, not by id."""
    return not (configured[:1] in "CG" and configured.isalnum() and configured.isupper())


def refused(status: ChannelStatus, error: str, *, private: bool) -> ChannelStatus:
    """What Slack's refusal of a join, post or share says of the channel (`private`: its id was seen private)."""
    if error == "method_not_supported_for_channel_type" or \
            (error in (*NOT_FOUND, "not_in_channel") and private):
        membership = Membership.PRIVATE_NOT_MEMBER
    elif error in NOT_FOUND:
        membership = Membership.NOT_VISIBLE
    elif error in ARCHIVED_ERRORS:
        membership = Membership.ARCHIVED
    else:
        membership = Membership.JOIN_FAILED
    return replace(status, membership=membership, error=error)


class Again:
    """When something failed for a channel may be tried again (the monotonic clock): at once the first time."""

    def __init__(self) -> None:
        self._at: dict[tuple[str, str], float] = {}

    def may(self, what: str, logical: str, every: float) -> bool:
        """Whether `what` may be tried for the channel now; if so, not again for `every` seconds."""
        now, key = time.monotonic(), (logical, what)
        if now < self._at.get(key, 0.0):
            return False
        self._at[key] = now + every
        return True


def same(a: ChannelStatus, b: ChannelStatus) -> bool:
    """Whether two statuses say the same of the channel, whenever each was learned."""
    return (a.configured, a.membership, a.channel_id, a.name, a.error) == \
        (b.configured, b.membership, b.channel_id, b.name, b.error)
