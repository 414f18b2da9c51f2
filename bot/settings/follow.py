"""What keeps a copy of a changeable setting takes the new value when it changes: the delivery worker and
intake (the zone in message text), the access policy, the channels, the report jobs and the App Home tabs."""

from __future__ import annotations

import asyncio
import logging

from bot.config import Settings
from bot.delivery.webapi import WebApiSender
from bot.deps import Deps
from bot.reports.schedule import reschedule

log = logging.getLogger(__name__)


def channels_of(settings: Settings) -> dict[str, str]:
    """The logical channels and the Slack channel (name or id) each is configured to."""
    return {"sales": settings.slack_sales_channel, "alerts": settings.slack_alerts_channel,
            "reports": settings.slack_reports_channel}


class Follower:
    """A LiveSettings hook: pushes a change into every collaborator that holds the old value."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._tasks: set[asyncio.Task[None]] = set()  # channel look-ups under way (kept, so none is collected)

    def __call__(self, before: Settings, after: Settings) -> None:
        deps = self.deps
        deps.worker.tz = deps.intake.tz = after.tz
        deps.access.settings = after
        if channels_of(before) != channels_of(after):
            self._retarget(after)
        times = (before.store_timezone, before.morning_report_at, before.evening_report_at)
        if deps.scheduler is not None and times != (after.store_timezone, after.morning_report_at,
                                                     after.evening_report_at):
            reschedule(deps.scheduler, after)
        deps.home.changed()  # Home tabs show times in the store's zone and who may read them
        log.info("settings changed from Slack are in force")

    def _retarget(self, after: Settings) -> None:
        if isinstance(self.deps.sender, WebApiSender):
            self.deps.sender.retarget(channels_of(after))
        directory = self.deps.channels
        if directory is not None and directory.reconfigure(channels_of(after)):
            task = asyncio.get_running_loop().create_task(directory.start(), name="channels")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
