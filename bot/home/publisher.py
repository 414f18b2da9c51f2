"""The App Home publisher: who opened the Home tab, and a debounced republish after new sales.

A burst of sales costs one `views.publish` per person: `changed()` only marks the view dirty, and the loop
publishes once nothing new has happened for `quiet` seconds (or `max_delay` after the first change, so a
steady stream of sales still refreshes the tab). The live view is the same for everyone allowed to read
revenue, so it is rendered once per round; everyone else gets a fixed view without figures. Who opened Home
is kept in memory, per process: a replica that never saw someone open the tab
does not refresh it, and the next `app_home_opened` (every time the tab is shown) publishes fresh figures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import AlertVerdict
from bot.blocks.home import with_settings_button
from bot.db import DB_UNAVAILABLE
from bot.delivery.senders import retry_after, slack_error

log = logging.getLogger(__name__)

Render = Callable[[bool], Awaitable[dict[str, Any]]]  # the live view, with or without the alerts' buttons
MaySee = Callable[[str], bool]
MayAct = Callable[[str], Awaitable[bool | AlertVerdict]]  # truthy: may act
# views.publish is Tier 4 (100+ per minute per workspace): https://api.slack.com/methods/views.publish
MAX_USERS = 50
# The refresh rounds' share of it: rounds are spaced so they publish at most this many views a minute, leaving the
# rest for tabs being opened and alert buttons clicked on Home (50 viewers: a round every 37.5 s at the most).
PUBLISHES_PER_MINUTE = 80
FORGET_AFTER = 7 * 24 * 3600.0  # someone who has not opened Home for a week is not watching it
# Errors after which publishing to that user again is pointless.
GONE = frozenset({"user_not_found", "user_disabled", "account_inactive", "not_enabled"})
# Rounds that failed for someone (a timeout, Slack's 5xx) are redone after the pause, this many times in a row: a
# reader removed in Settings must not keep yesterday's figures because one call failed.
MAX_RETRY_ROUNDS = 5


class HomePublisher:
    """Publishes the Home view on open, and to everyone who opened it after a quiet period following changes."""

    def __init__(self, *, client: AsyncWebClient | None, quiet: float = 5.0, max_delay: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.quiet = quiet
        self.max_delay = max_delay
        self._clock = clock
        self._render: Render | None = None
        self._restricted: dict[str, Any] | None = None
        self._may_see: MaySee = lambda _user: False  # closed until bound
        self._may_act: MayAct = _nobody
        self._may_administer: MaySee = lambda _user: False
        self._users: OrderedDict[str, float] = OrderedDict()  # user id → when they last opened Home
        self._dirty = asyncio.Event()
        self._resume_at = 0.0  # loop time before which Slack asked us not to publish (429 Retry-After)
        self._retries = 0  # failed rounds redone in a row
        self.rounds = 0  # debounced rounds published (tests and metrics read it)

    def bind(self, render: Render, *, restricted: dict[str, Any], may_see: MaySee, may_act: MayAct,
             may_administer: MaySee | None = None) -> None:
        """What to publish: the live view for those who `may_see` figures — with the alerts' buttons for those who
        `may_act` on alerts — and `restricted` (fixed) for the others, with the Settings button for those who
        `may_administer` (an admin need not read revenue)."""
        self._render = render
        self._restricted = restricted
        self._may_see = may_see
        self._may_act = may_act
        self._may_administer = may_administer or (lambda _user: False)

    @property
    def users(self) -> tuple[str, ...]:
        """Who gets the debounced refreshes, most recently opened (the likeliest to be looking) first."""
        return tuple(reversed(self._users))

    async def opened(self, user_id: str) -> None:
        """Someone opened the Home tab: remember them and publish the current view to them now."""
        self._users[user_id] = self._clock()
        self._users.move_to_end(user_id)
        while len(self._users) > MAX_USERS:
            self._users.popitem(last=False)
        await self.publish([user_id])

    def changed(self) -> None:
        """The figures changed (a sale, an alert clicked): refresh everyone's Home after the quiet period."""
        if self._users:
            self._retries = 0  # new figures: their round gets its own tries, whatever the last ones came to
            self._dirty.set()

    async def publish(self, users: list[str]) -> None:
        """Render once and publish to each of `users`, those who may not see figures first (taking revenue off a
        removed reader's tab comes before refreshing it); Slack and database trouble is logged, not raised, and a
        round that failed for someone is redone."""
        if await self._publish([u for u in users if not self._may_see(u)] + [u for u in users if self._may_see(u)]):
            self._retries = 0
        elif self._retries < MAX_RETRY_ROUNDS:
            self._retries += 1
            self._dirty.set()

    async def _publish(self, users: list[str]) -> bool:  # long: one round, each way it can fail named
        """One round; False when someone's view may be stale for a reason worth another try."""
        if self.client is None or self._render is None or self._restricted is None:
            return True  # nothing to publish with yet
        live: dict[bool, dict[str, Any]] = {}  # rendered once per round for each kind of viewer: buttons or not
        failed = False
        locked = {False: self._restricted, True: with_settings_button(self._restricted)}
        for user in users:
            view = locked[self._may_administer(user)]
            if self._may_see(user):
                buttons = bool(await self._may_act(user))
                try:
                    view = live[buttons] if buttons in live else live.setdefault(buttons, await self._render(buttons))
                except DB_UNAVAILABLE as exc:
                    log.warning("home view not refreshed: database unavailable: %s", exc)
                    return False
            try:
                await self.client.views_publish(user_id=user, view=view)
            except SlackApiError as exc:
                error = slack_error(exc)
                log.warning("views.publish for %s failed: %s", user, error)
                if error in GONE:
                    self._users.pop(user, None)
                    continue
                if error == "ratelimited":  # the rest of the round waits for the next one, after Retry-After
                    self._resume_at = asyncio.get_running_loop().time() + retry_after(exc.response.headers)
                    self._dirty.set()
                    return True  # not a failure to count: Slack said when
                failed = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("views.publish for %s failed: %s", user, exc)
                return False  # Slack unreachable: the rest would wait out the same timeout
        return not failed

    async def _settle(self) -> None:
        """Wait until no change for `quiet` seconds, or until `max_delay` after the first change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay
        while (left := min(self.quiet, deadline - loop.time())) > 0:
            self._dirty.clear()
            try:
                async with asyncio.timeout(left):  # not wait_for: it can swallow a cancel on 3.11
                    await self._dirty.wait()
            except TimeoutError:
                return
        self._dirty.clear()

    async def run(self) -> None:
        """The refresh loop: one round per settled burst of changes, rounds spaced to PUBLISHES_PER_MINUTE."""
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            await self._settle()
            cutoff = self._clock() - FORGET_AFTER
            for user in [u for u, at in self._users.items() if at < cutoff]:
                del self._users[user]
            started, users = loop.time(), list(self.users)
            await self.publish(users)
            self.rounds += 1
            # Changes meanwhile keep the view dirty: the next round follows this pause.
            await asyncio.sleep(max(started + len(users) * 60 / PUBLISHES_PER_MINUTE, self._resume_at) - loop.time())


async def _nobody(_user: str) -> bool:
    return False

