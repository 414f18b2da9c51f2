"""Database unreachable: the one alert that cannot be queued in the database, so it goes straight to Slack."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from bot.blocks.alerts import database_down_message
from bot.delivery.senders import Sender, Status

log = logging.getLogger(__name__)

# Two failed checks in a row: a single blip (a restart, a failover) is not worth waking anyone.
FAILURES_BEFORE_ALERT = 2


class DatabaseWatch:
    """Counts failed database checks; posts once when down, updates that message once it is back."""

    def __init__(self, sender: Sender, *, tz: ZoneInfo, mention: str) -> None:
        self._sender = sender
        self._tz = tz
        self._mention = mention
        self.failures = 0
        self.down_since: dt.datetime | None = None
        self._posted: tuple[str | None, str | None] | None = None  # (channel id, ts) of the alert
        self.incident: tuple[dt.datetime, dt.datetime] | None = None  # last outage, for the record

    def retune(self, *, tz: ZoneInfo, mention: str) -> None:
        """Take the time zone and on-call mention in force now (they can change from Slack's Settings view)."""
        self._tz, self._mention = tz, mention

    async def down(self, now: dt.datetime, error: str, *, may_post: bool) -> None:
        """A check failed; post the alert when it is the second in a row and this replica speaks."""
        self.failures += 1
        self.down_since = self.down_since or now
        if self.failures < FAILURES_BEFORE_ALERT or self._posted is not None or not may_post:
            return
        msg = database_down_message(since=self.down_since, now=now, error=error, tz=self._tz, mention=self._mention)
        result = await self._sender.post("alerts", msg.as_payload())
        if result.status is Status.OK:
            self._posted = (result.channel_id, result.ts)
        else:
            log.error("could not post the database alert to Slack either: %s", result.error)

    async def up(self, now: dt.datetime) -> None:
        """A check passed; resolve the posted alert in place (and in its thread)."""
        since, posted = self.down_since, self._posted
        self.failures, self.down_since, self._posted = 0, None, None
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
