"""Database unreachable: the one alert that cannot be queued in the database, so it goes straight to Slack."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from bot.blocks.alerts import database_down_message, database_owed_page
from bot.delivery.senders import Sender, Status

log = logging.getLogger(__name__)

# Two failed checks in a row: a single blip (a restart, a failover) is not worth waking anyone.
FAILURES_BEFORE_ALERT = 2


class DatabaseWatch:
    """Counts failed database checks; posts once when down, updates that message once it is back. Posted inside
    quiet hours without the on-call mention, the alert owes its page: paged once in its thread when they end, if
    the database is still unreachable. There is no database to log that in: the state lives here, in memory."""

    def __init__(self, sender: Sender, *, tz: ZoneInfo, mention: str, quiet: bool = False) -> None:
        self._sender = sender
        self._tz = tz
        self._mention = mention  # the on-call mention configured, used outside quiet hours
        self._quiet = quiet
        self.failures = 0
        self.down_since: dt.datetime | None = None
        self._posted: tuple[str | None, str | None] | None = None  # (channel id, ts) of the alert
        self.owes_page = False  # posted inside quiet hours, not paged since
        self.incident: tuple[dt.datetime, dt.datetime] | None = None  # last outage, for the record

    def retune(self, *, tz: ZoneInfo, mention: str, quiet: bool) -> None:
        """Take the time zone, on-call mention and quiet hours in force now (they can change from Slack's
        Settings view)."""
        self._tz, self._mention, self._quiet = tz, mention, quiet

    async def down(self, now: dt.datetime, error: str, *, may_post: bool) -> None:
        """A check failed; post the alert when it is the second in a row and this replica speaks; page once, when
        the quiet hours it was posted in are over."""
        self.failures += 1
        self.down_since = self.down_since or now
        if self._posted is not None:
            if self.owes_page and not self._quiet and self._mention:
                await self._page(now)
            return
        if self.failures < FAILURES_BEFORE_ALERT or not may_post:
            return
        mention = "" if self._quiet else self._mention
        msg = database_down_message(since=self.down_since, now=now, error=error, tz=self._tz, mention=mention)
        result = await self._sender.post("alerts", msg.as_payload())
        if result.status is Status.OK:
            self._posted = (result.channel_id, result.ts)
            self.owes_page = self._quiet and bool(self._mention)
        else:
            log.error("could not post the database alert to Slack either: %s", result.error)

    async def _page(self, now: dt.datetime) -> None:
        """The page the alert owes: a reply in its thread sent to the channel too (a thread reply alone notifies
        only the thread's followers), or a message of its own where there are no threads. Tried again at the next
        check until Slack takes it."""
        assert self._posted is not None and self.down_since is not None
        msg = database_owed_page(since=self.down_since, now=now, tz=self._tz, mention=self._mention)
        channel_id, ts = self._posted
        if self._sender.supports_updates and channel_id and ts:
            result = await self._sender.post("alerts", {**msg.as_payload(), "reply_broadcast": True}, thread_ts=ts,
                                             channel_id=channel_id)
        else:
            result = await self._sender.post("alerts", msg.as_payload())
        if result.status is Status.OK:
            self.owes_page = False
        else:
            log.error("could not page about the database alert: %s", result.error)

    async def up(self, now: dt.datetime) -> None:
        """A check passed; resolve the posted alert in place (and in its thread)."""
        since, posted = self.down_since, self._posted
        self.failures, self.down_since, self._posted, self.owes_page = 0, None, None, False
        if since is None or posted is None:
            return
        self.incident = (since, now)
        msg = database_down_message(since=since, now=now, error="", tz=self._tz, mention=self._mention,
                                    resolved_at=now)
        channel_id, ts = posted
        if self._sender.supports_updates and channel_id and ts:
            await self._sender.update("alerts", channel_id=channel_id, ts=ts, payload=msg.as_payload())
            await self._sender.post("alerts", msg.as_payload(), thread_ts=ts, channel_id=channel_id)
        else:
            await self._sender.post("alerts", msg.as_payload())
