"""The App Home publisher: who opened the Home tab, and a debounced republish after changes on any replica.

A burst of sales costs one `views.publish` per person: `changed()` only marks the view dirty, and the loop
publishes once nothing new has happened for `quiet` seconds (or `max_delay` after the first change, so a
steady stream of sales still refreshes the tab). The live view is the same for everyone allowed to read
revenue, so it is rendered once per round; everyone else gets a fixed view without figures. Who opened Home
is kept in memory, per process; a change on any replica reaches the others' viewers by a NOTIFY (at most one a
second per replica) heard on the settings listener's connection. Each view published is numbered by when its render
began, so an older render never replaces a newer one (a round still under way after a click on Home), and carries
the hash Slack gave the view we last knew of: another replica's publish since then makes Slack answer
`hash_conflict`, and the view is rendered again. Whether someone may see figures is asked again just before
their publish: a reader removed during a slow render gets the view without them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import AlertVerdict
from bot.blocks.home import with_settings_button
from bot.db import DB_UNAVAILABLE
from bot.delivery.listener import Subscribe
from bot.delivery.senders import retry_after, slack_error
from queries import home as q

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
ANNOUNCE_SECONDS = 1.0  # a replica tells the others of changes at most this often: a sale burst is one NOTIFY a second
Listen = Callable[[Subscribe, Callable[[], None]], None]  # LiveSettings.also_listen: a channel on its connection
Shown = tuple[int, str | None]  # a user's view as we last know it: the number of its render, Slack's hash of it




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
        self._renders = 0  # renders begun: each view published is numbered by its own
        self._shown: dict[str, Shown] = {}  # user id → their view as we last know it
        self._owed: set[str] = set()  # publishes put off while Retry-After runs: the next round makes them
        self._pool: asyncpg.Pool | None = None  # set by share(): changes are told to the other replicas
        self._origin = secrets.token_hex(8)  # names this replica in its notifications: its own are no news
        self._announce = asyncio.Event()

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

    def share(self, pool: asyncpg.Pool, listen: Listen) -> None:
        """Tell the other replicas of changes through `pool`, and hear theirs with `listen` (a channel on a listener
        connection this replica holds anyway; on each (re)connection, whatever went unheard counts as a change)."""
        self._pool = pool
        listen(lambda conn: q.listen(conn, self._heard), self._mark)

    @property
    def users(self) -> tuple[str, ...]:
        """Who gets the debounced refreshes, most recently opened (the likeliest to be looking) first."""
        return tuple(reversed(self._users))

    async def opened(self, user_id: str, *, view_hash: str | None = None) -> None:
        """Someone opened the Home tab (showing the view Slack hashes `view_hash`, if any): remember them and publish
        the current view to them now."""
        self._users[user_id] = self._clock()
        self._users.move_to_end(user_id)
        while len(self._users) > MAX_USERS:
            self._users.popitem(last=False)
        self.saw(user_id, view_hash)
        await self.publish([user_id])

    def saw(self, user: str, view_hash: str | None) -> None:
        """Slack says `user`'s Home shows the view it hashes `view_hash` (app_home_opened, a click on Home): the next
        publish replaces that one, or answers hash_conflict."""
        if view_hash:
            self._shown[user] = (self._shown.get(user, (-1, None))[0], view_hash)

    def changed(self) -> None:
        """The figures changed (a sale, an alert clicked): refresh everyone's Home, on every replica, after the quiet
        period."""
        self._mark()
        if self._pool is not None:
            self._announce.set()

    def _mark(self) -> None:
        """Refresh this replica's viewers after the quiet period."""
        if self._users:
            self._retries = 0  # new figures: their round gets its own tries, whatever the last ones came to
            self._dirty.set()

    def _heard(self, origin: str) -> None:
        if origin != self._origin:  # our own notification: its change is marked already
            self._mark()

    def _owe(self, users: list[str]) -> None:
        """Publish to `users` in the next round, once Slack's Retry-After has passed."""
        self._owed.update(users)
        self._dirty.set()

    async def publish(self, users: list[str]) -> None:
        """Render once and publish to each of `users`, those who may not see figures first (taking revenue off a
        removed reader's tab comes before refreshing it); Slack and database trouble is logged, not raised, and a
        round that failed for someone is redone. While Slack's Retry-After runs, the next round publishes them."""
        if await self._publish([u for u in users if not self._may_see(u)] + [u for u in users if self._may_see(u)]):
            self._retries = 0
        elif self._retries < MAX_RETRY_ROUNDS:
            self._retries += 1
            self._dirty.set()

    async def _publish(self, users: list[str]) -> bool:  # long: one round, each way it can fail named
        """One round; False when someone's view may be stale for a reason worth another try."""
        if self.client is None or self._render is None or self._restricted is None:
            return True  # nothing to publish with yet
        live: dict[bool, tuple[int, dict[str, Any]]] = {}  # rendered once per round for each kind of viewer
        failed, loop = False, asyncio.get_running_loop()
        for n, user in enumerate(users):
            if loop.time() < self._resume_at:  # Slack's Retry-After runs (a 429 on another publish): wait it out
                self._owe(users[n:])
                return True
            try:
                await self._publish_to(user, live)
            except DB_UNAVAILABLE as exc:
                log.warning("home view not refreshed: database unavailable: %s", exc)
                return False
            except SlackApiError as exc:
                error = slack_error(exc)
                log.warning("views.publish for %s failed: %s", user, error)
                if error in GONE:
                    self._users.pop(user, None)
                    continue
                if error == "ratelimited":  # the rest of the round waits for the next one, after Retry-After
                    self._resume_at = loop.time() + retry_after(exc.response.headers)
                    self._owe(users[n:])
                    return True  # not a failure to count: Slack said when
                failed = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("views.publish for %s failed: %s", user, exc)
                return False  # Slack unreachable: the rest would wait out the same timeout
        return not failed

    async def _publish_to(self, user: str, live: dict[bool, tuple[int, dict[str, Any]]], *,
                          again: bool = True) -> None:
        """Publish `user`'s view, unless a newer render is on their tab already (a click on Home while this round
        went on); over the view we know of, rendered again when another replica published since (hash_conflict)."""
        assert self.client is not None  # _publish's precondition
        number, view = await self._view_for(user, live)
        shown, view_hash = self._shown.get(user, (-1, None))
        if number < shown:
            return
        try:
            answer = await self.client.views_publish(user_id=user, view=view,
                                                     **({"hash": view_hash} if view_hash else {}))
        except SlackApiError as exc:
            if not (again and view_hash and slack_error(exc) == "hash_conflict"):
                raise
            log.info("Home of %s was published elsewhere meanwhile: rendering it again", user)
            self._shown[user] = (self._shown.get(user, (-1, None))[0], None)
            await self._publish_to(user, {}, again=False)  # a fresh render, newer than whatever the other published
            return
        if number >= self._shown.get(user, (-1, None))[0]:
            published = answer.get("view") if answer is not None else None  # a stand-in client may answer nothing
            self._shown[user] = (number, published.get("hash") if isinstance(published, dict) else None)

    async def _view_for(self, user: str, live: dict[bool, tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        """`user`'s view and the number of its render; may they see figures is asked again after the look-ups and
        the render, which can be slow: a reader removed meanwhile gets the view without figures."""
        assert self._render is not None and self._restricted is not None  # _publish's precondition
        if self._may_see(user):
            buttons = bool(await self._may_act(user))
            if buttons not in live:
                number = self._begin()
                live[buttons] = (number, await self._render(buttons))
            if self._may_see(user):
                return live[buttons]
        locked = with_settings_button(self._restricted) if self._may_administer(user) else self._restricted
        return self._begin(), locked

    def _begin(self) -> int:
        self._renders += 1
        return self._renders

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
        """The refresh loop: one round per settled burst of changes, rounds spaced to PUBLISHES_PER_MINUTE and
        none before Slack's Retry-After has passed; beside it, telling the other replicas of changes."""
        loop = asyncio.get_running_loop()
        announcing = None if self._pool is None else asyncio.create_task(self._announcing(self._pool),
                                                                          name="home-announce")
        try:
            while True:
                await self._dirty.wait()
                await self._settle()
                await asyncio.sleep(self._resume_at - loop.time())  # a 429 on an open or a click: wait it out
                cutoff = self._clock() - FORGET_AFTER
                for user in [u for u, at in self._users.items() if at < cutoff]:
                    del self._users[user]
                    self._shown.pop(user, None)
                owed, self._owed = self._owed, set()
                started, users = loop.time(), list(self.users) + sorted(owed.difference(self._users))
                await self.publish(users)
                self.rounds += 1
                # Changes meanwhile keep the view dirty: the next round follows this pause.
                await asyncio.sleep(max(started + len(users) * 60 / PUBLISHES_PER_MINUTE, self._resume_at)
                                    - loop.time())
        finally:
            if announcing is not None:
                announcing.cancel()
                await asyncio.gather(announcing, return_exceptions=True)

    async def _announcing(self, pool: asyncpg.Pool) -> None:
        """Tell the other replicas of changes as they come, at most once every ANNOUNCE_SECONDS."""
        while True:
            await self._announce.wait()
            self._announce.clear()
            try:
                await q.notify(pool, origin=self._origin)
            except (*DB_UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("could not tell the other replicas that Home changed (%s): their tabs lag", exc)
            await asyncio.sleep(ANNOUNCE_SECONDS)


async def _nobody(_user: str) -> bool:
    return False

