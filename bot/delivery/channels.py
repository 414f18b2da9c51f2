"""The configured Slack channels as Slack sees them: ids, public or private, whether the bot is in them.

`chat:write.public` lets the bot post to a public channel it never joined, but not read it back
(`conversations.history` → `not_in_channel`) nor share a file there (`files.completeUploadExternal` →
`not_in_channel`): https://docs.slack.dev/reference/scopes/chat.write.public. So at start-up the bot
resolves the configured names to ids once (`conversations.list`, scopes `channels:read`, `groups:read`)
and joins the public ones (`conversations.join`, scope `channels:join`); on a later `not_in_channel` it
joins and retries once. A private channel cannot be joined (`method_not_supported_for_channel_type`) and
is invisible to a bot that is not in it (`channel_not_found`): someone has to `/invite @salespulse`. With a
`ChannelStore`, what the bot learns is shared with the other replicas (bot/delivery/channel_store.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import standing as st
from bot.delivery.channel_store import ChannelStore
from bot.delivery.senders import slack_error
from bot.delivery.standing import BOT_MENTION as BOT_MENTION  # re-exported: its users import it from here
from bot.delivery.standing import MEMBERSHIPS, ChannelStatus, Membership, matches, same, standing
from queries.channel_status import StoredStatus

log = logging.getLogger(__name__)

LIST_PAGE: Final = 1000  # conversations.list's largest page
MAX_LIST_PAGES: Final = 50  # 50 000 channels: a bound, not a real workspace
# A join that failed for Slack's trouble is tried again when a post goes through, at most this often; a name refused
# at its id is looked up again (conversations.list, Tier 2) at most this often while its messages are held.
JOIN_AGAIN_SECONDS: Final = 60.0
RESOLVE_AGAIN_SECONDS: Final = 300.0


class ChannelDirectory:
    """The bot's view of its configured channels; joins public ones and remembers why others fail."""

    def __init__(self, client: AsyncWebClient, configured: Mapping[str, str], *,
                 store: ChannelStore | None = None) -> None:
        self._client = client
        self._status = {logical: ChannelStatus(logical, value) for logical, value in configured.items()}
        self._private: set[str] = set()  # ids seen private: a later channel_not_found there means "not invited"
        self._store = store
        self._learned: set[str] = set()  # logical channels whose standing changed, not stored yet
        # When each standing learned here and not stored yet was learned (the database's clock, as best known): a
        # stored one is newer only if stored after it.
        self._noted: dict[str, dt.datetime] = {}
        self._again = st.Again()  # a join failed for Slack's trouble, a name not found at its id: tried again

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

    def _put(self, status: ChannelStatus) -> None:
        """What was just learned of a channel; a change (only) is stored by the next `_flush()`."""
        if same(self._status.get(status.logical) or ChannelStatus("", ""), status):
            return
        # Unstamped until stored: only the database's clock orders what the replicas learned.
        self._status[status.logical] = replace(status, learned_at=None)
        self._noted[status.logical] = self._store.now() if self._store is not None else dt.datetime.now(dt.UTC)
        self._learned.add(status.logical)

    async def _flush(self) -> None:
        """Store the changes `_put()` noted, for the other replicas; one the database did not take is written again
        on the next post or the follow poll. "Not checked yet" is no news: a replica whose conversations.list failed
        must not hide what another one knows."""
        learned, self._learned = self._learned, set()
        for logical in learned:
            status = self._status.get(logical)
            if self._store is None or status is None or status.membership is Membership.UNKNOWN:
                continue
            written = await self._store.record(logical=logical, configured=status.configured,
                                               membership=status.membership.value, channel_id=status.channel_id,
                                               name=status.name, error=status.error)
            if self._status.get(logical) is not status:  # learned or adopted meanwhile: that counts now
                continue
            if written.at is not None:
                self._status[logical] = replace(status, learned_at=written.at)  # the database's clock, as the others'
                self._noted.pop(logical, None)
            elif written.failed:
                self._learned.add(logical)

    def adopt(self, stored: Iterable[StoredStatus]) -> tuple[ChannelStatus, ...]:
        """Take what any replica stored when it is newer than what this one knows (a known standing always beats
        "not checked yet"); every configured channel, as `statuses()`."""
        for row in stored:
            status = self._status.get(row.logical)
            known = MEMBERSHIPS.get(row.membership)  # None: written by a newer release; keep what is known here
            if status is None or known is None or status.configured != row.configured:
                continue
            theirs = replace(status, membership=known, channel_id=row.channel_id, name=row.name, error=row.error,
                             learned_at=row.learned_at)
            if not self._older(status, theirs, row.learned_at):
                continue
            if known is Membership.PRIVATE_NOT_MEMBER and row.channel_id:
                self._private.add(row.channel_id)
            self._status[row.logical] = theirs
            self._learned.discard(row.logical)
            self._noted.pop(row.logical, None)
        return self.statuses()

    def _older(self, status: ChannelStatus, theirs: ChannelStatus, stored_at: dt.datetime) -> bool:
        """Whether what this replica knows of a channel is older than a stored standing (`theirs`)."""
        if status.membership is Membership.UNKNOWN:
            return True
        if status.learned_at is not None:
            return stored_at > status.learned_at
        # Learned here, not stored yet (its write failed): fresher than whatever was stored before it was learned.
        # The same standing stored is this news (a write that timed out but went through, or another replica's).
        noted = self._noted.get(status.logical)
        return same(status, theirs) or noted is None or stored_at > noted

    async def follow(self, dsn: str) -> None:
        """Until cancelled, take what the other replicas learn (nothing to follow without a store)."""
        if self._store is not None:
            await self._store.follow(dsn, self.adopt, self._flush)

    async def start(self) -> None:
        """At start-up: resolve names to ids once, then join every public channel the bot is not in."""
        await self.resolve()
        for status in self.statuses():
            if status.membership is Membership.PUBLIC_NOT_JOINED and status.channel_id:
                await self.join(status.channel_id)

    async def resolve(self) -> None:
        """Look every configured channel up in conversations.list (public ones, and private ones the bot is in)."""
        pending = dict(self._status)
        error = await self._list(pending)
        if error is not None:
            self._unknown(pending, error)
        else:
            for status in pending.values():
                self._put(replace(status, membership=Membership.NOT_VISIBLE))
        await self._flush()

    async def _list(self, pending: dict[str, ChannelStatus]) -> str | None:
        """Page through conversations.list, taking the channels found off `pending`; None, or why Slack failed."""
        cursor: str | None = None
        try:
            for _ in range(MAX_LIST_PAGES):
                page: Any = await self._client.conversations_list(
                    types="public_channel,private_channel", limit=LIST_PAGE, cursor=cursor)
                for channel in page.get("channels") or []:
                    if channel.get("is_private") and channel.get("id"):
                        self._private.add(str(channel["id"]))
                    for logical, status in list(pending.items()):
                        if matches(status.configured, channel):
                            self._put(standing(status, channel))
                            del pending[logical]
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor or not pending:
                    return None
        except SlackApiError as exc:
            return f"conversations.list: {slack_error(exc)}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"conversations.list: {type(exc).__name__}"
        return None

    def _unknown(self, pending: Mapping[str, ChannelStatus], error: str) -> None:
        """Slack could not be asked: a standing already known (from another replica, say) is kept."""
        log.warning("cannot list Slack channels (%s): channel membership unknown until first use", error)
        for logical in pending:
            status = self._status.get(logical)  # now: the list may have taken a while
            if status is not None and status.membership is Membership.UNKNOWN:
                self._put(replace(status, error=error))

    async def join(self, channel_id: str) -> str | None:
        """conversations.join; None once the bot is in the channel, else Slack's reason (recorded)."""
        try:
            resp: Any = await self._client.conversations_join(channel=channel_id)
        except SlackApiError as exc:
            error = slack_error(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{st.NO_ANSWER}: {type(exc).__name__}: {exc}"[:200]
        else:
            log.info("joined Slack channel %s", channel_id)
            channel = resp.get("channel") or {"id": channel_id}
            for status in self.statuses():
                if status.channel_id == channel_id or matches(status.configured, channel):
                    self._put(standing(status, {**channel, "is_member": True}))
            await self._flush()
            return None
        log.warning("could not join Slack channel %s: %s", channel_id, error)
        self._update(channel_id, lambda s: self._refused(s, error))
        await self._flush()
        return error

    def _refused(self, status: ChannelStatus, error: str) -> ChannelStatus:
        return st.refused(status, error, private=status.channel_id in self._private)

    async def note_refusal(self, channel: str, error: str) -> None:
        """A post or share was refused (channel_not_found, is_archived): remember why, for /health. A name not found
        at its id may be another channel's now (deleted, created anew): looked up again, not left at the old id."""
        self._update(channel, lambda s: self._refused(s, error))
        await self._flush()
        status = self.find(channel)
        if error in st.NOT_FOUND and status is not None and st.by_name(status.configured) and \
                self._again.may("resolve", status.logical, RESOLVE_AGAIN_SECONDS):
            await self._resolve_again(status)

    async def _resolve_again(self, status: ChannelStatus) -> None:
        """conversations.list for this channel alone; a public channel found under its name is joined, as at start."""
        error = await self._list({status.logical: status})
        if error is not None:
            log.warning("cannot look Slack channel %s up again (%s)", status.configured, error)
            return
        await self._flush()
        now = self._status.get(status.logical)
        if now is not None and now.channel_id != status.channel_id:
            log.info("Slack channel %s is now %s (was %s)", status.configured, now.channel_id, status.channel_id)
            if now.membership is Membership.PUBLIC_NOT_JOINED and now.channel_id:
                await self.join(now.channel_id)

    async def note_shared(self, channel_id: str) -> None:
        """A file was shared in the channel: Slack shares one only where the bot is a member, whatever was known."""
        status = self.find(channel_id)
        if status is not None and status.membership is not Membership.MEMBER:
            log.info("Slack channel %s took a file: the bot is a member", status.label)
            self._put(replace(status, membership=Membership.MEMBER, error=None))
        await self._flush()

    async def note_delivered(self, channel: str, channel_id: str | None) -> None:
        """A post to the configured channel went through: whatever /health said kept the bot out is fixed. A join
        that failed for Slack's trouble is made now (Slack answers again). A channel recorded as refusing, or unknown
        since conversations.list failed (at start-up), has its standing asked of Slack once (conversations.info): one
        not found may be a private channel the bot was invited to since, or a public one created since, which takes
        posts by chat:write.public without the bot in it; an unknown one is joined if public, as start-up would have.
        When Slack cannot say: a member if it is known private (only an invitation lets the bot post there), else
        public, not joined (joined on its first read)."""
        status = self.find(channel)
        if status is not None and status.membership is Membership.JOIN_FAILED and st.temporary(status.error) and \
                status.channel_id and self._again.may("join", status.logical, JOIN_AGAIN_SECONDS):
            await self.join(status.channel_id)
            return
        if status is None or not (status.membership in st.REFUSING or st.unresolved(status)):
            if self._learned:  # a change whose write failed: written again
                await self._flush()
            return
        known = channel_id or status.channel_id
        log.info("Slack channel %s takes posts%s", status.label, "" if st.unresolved(status) else " again")
        info = await self._info(known) if known else None
        if self._status.get(status.logical) is not status:  # reconfigured, or noted by another post, meanwhile
            return
        if info is not None:
            if info.get("is_private"):
                self._private.add(str(known))
            self._put(standing(status, {"id": known, **info}))
        else:
            member = status.membership is Membership.PRIVATE_NOT_MEMBER or known in self._private
            self._put(replace(status, membership=Membership.MEMBER if member else Membership.PUBLIC_NOT_JOINED,
                              channel_id=known, error=None))
        await self._flush()
        if info is not None and known and st.unresolved(status) and \
                self._status[status.logical].membership is Membership.PUBLIC_NOT_JOINED:
            await self.join(known)

    async def _info(self, channel_id: str) -> Mapping[str, Any] | None:
        """conversations.info's channel object (None: Slack could not be asked)."""
        try:
            resp: Any = await self._client.conversations_info(channel=channel_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("conversations.info %s: %s", channel_id,
                        slack_error(exc) if isinstance(exc, SlackApiError) else type(exc).__name__)
            return None
        channel = resp.get("channel")
        return channel if isinstance(channel, dict) else None

    def _update(self, channel: str, change: Callable[[ChannelStatus], ChannelStatus]) -> None:
        status = self.find(channel)
        if status is not None:
            self._put(change(status))

    def explain(self, channel: str, error: str) -> str:
        """Slack's error, followed by what the operator should do when the channel is a configured one."""
        status = self.find(channel)
        return error if status is None else f"{error}: {status.describe()}"
