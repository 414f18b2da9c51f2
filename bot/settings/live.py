"""The live settings: the environment's Settings and the rules file's RuleSet, with the values stored from the
Settings view over them, reloaded on every replica when a change commits (LISTEN/NOTIFY, reconnected like the
outbox listener, plus a slow poll in case a notification is lost)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

import asyncpg

from bot.alerts.rules import RuleSet
from bot.config import Settings
from bot.db import DB_UNAVAILABLE
from bot.delivery.listener import NotifyListener, Subscribe
from bot.settings.values import effective
from queries import settings as q

log = logging.getLogger(__name__)

POLL_SECONDS: Final = 30.0  # a lost notification (a listener reconnecting) is caught up this late at worst

Hook = Callable[[Settings, Settings], None]  # (before, after): something that keeps a copy of a setting


async def stored_over(db: asyncpg.Pool, env: Settings) -> Settings:
    """The environment's Settings with what was changed from Slack (for one-off commands such as
    `salespulse report`); the environment alone before the schema exists."""
    try:
        stored = await q.overrides(db)
    except asyncpg.UndefinedTableError:
        return env
    return effective(env, RuleSet(), {o.key: o.value for o in stored})[0]


class LiveSettings:
    """What is in force now: `settings` and `rules`, replaced whole whenever the stored values change."""

    def __init__(self, env: Settings, rules: RuleSet) -> None:
        self.env, self.base_rules = env, rules  # the defaults: environment and ALERT_RULES_FILE
        self.settings, self.rules = env, rules
        self.overrides: tuple[q.Override, ...] = ()
        self.loaded = asyncio.Event()  # set once the stored values were read (tests wait on reloads with it)
        self.listener: NotifyListener | None = None  # while running; its `listening` is set while LISTEN holds
        self._hooks: list[Hook] = []
        self._wake = asyncio.Event()
        self._also: list[tuple[Subscribe, Callable[[], None]]] = []  # other channels served by the same connection

    def also_listen(self, subscribe: Subscribe, on_notify: Callable[[], None]) -> None:
        """Listen on another channel over the settings listener's connection (NotifyListener.also), rather than
        on a connection of its own; before `run()`."""
        self._also.append((subscribe, on_notify))

    def on_change(self, hook: Hook) -> None:
        """Call `hook(before, after)` after every change of the Settings in force (rules are read where used)."""
        self._hooks.append(hook)

    def apply(self, overrides: list[q.Override]) -> None:
        """Put these stored values in force over the defaults, and tell whoever keeps a copy."""
        before = self.settings
        self.settings, self.rules = effective(self.env, self.base_rules, {o.key: o.value for o in overrides})
        self.overrides = tuple(overrides)
        if self.settings != before:
            for hook in self._hooks:
                hook(before, self.settings)

    async def reload(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        """Read the stored values and put them in force."""
        self.apply(await q.overrides(db))
        self.loaded.set()

    def changed(self) -> None:
        """A change committed somewhere (a NOTIFY): reload soon."""
        self._wake.set()

    async def run(self, pool: asyncpg.Pool, dsn: str) -> None:
        """Follow changes until cancelled: LISTEN on a connection of its own, reload on each notification."""
        self.listener = NotifyListener(dsn, on_notify=self.changed, name="settings listener",
                                       subscribe=lambda conn: q.listen(conn, self.changed))
        for subscribe, on_notify in self._also:
            self.listener.also(subscribe, on_notify)
        follow = asyncio.create_task(self.listener.run(), name="settings-listener")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):  # not wait_for: it can swallow a cancel on 3.11
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.reload(pool)
                except (*DB_UNAVAILABLE, asyncpg.PostgresError) as exc:
                    log.warning("could not reload settings (%s); keeping those in force", exc)
        finally:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
