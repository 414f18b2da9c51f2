"""Whether the Socket Mode WebSocket is up: written by the connection (bot/slack_app.py), read by /health."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.clock import Clock, utcnow


@dataclass(frozen=True, slots=True)
class SocketState:
    """The connection at one moment."""

    connected: bool
    since: dt.datetime  # when it connected, or when it was lost (start-up, before the first connect)
    last_error: str | None = None  # why the latest attempt failed, while not connected


class SocketWatch:
    """The one mutable record of the Socket Mode connection, updated as it connects, fails and is lost."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
        self.state = SocketState(connected=False, since=clock())

    def connected(self) -> None:
        self.state = SocketState(connected=True, since=self._clock())

    def lost(self) -> None:
        """The socket is being replaced or went away: not connected from now (unless already so)."""
        if self.state.connected:
            self.state = SocketState(connected=False, since=self._clock())

    def failed(self, error: str) -> None:
        """An attempt (a new URL or the handshake) failed; down since the last time it was up."""
        since = self._clock() if self.state.connected else self.state.since
        self.state = SocketState(connected=False, since=since, last_error=error[:200])
