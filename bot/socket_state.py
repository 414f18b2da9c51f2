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


# A failure the connection keeps meeting (a refused token, a long outage) is logged again after this long, not
# at every retry.
SAID_AGAIN_AFTER = dt.timedelta(minutes=5)


class SocketWatch:
    """The one mutable record of the Socket Mode connection, updated as it connects, fails and is lost."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
        self.state = SocketState(connected=False, since=clock())
        self._said: tuple[str, dt.datetime] | None = None  # the failure last logged, and when

    def connected(self) -> None:
        self.state = SocketState(connected=True, since=self._clock())
        self._said = None

    def lost(self) -> None:
        """The socket is being replaced or went away: not connected from now (unless already so)."""
        if self.state.connected:
            self.state = SocketState(connected=False, since=self._clock())

    def failed(self, error: str) -> bool:
        """An attempt (a new URL or the handshake) failed; down since the last time it was up. Whether to log it:
        another failure than the one last logged, or the same one SAID_AGAIN_AFTER later."""
        now = self._clock()
        since = now if self.state.connected else self.state.since
        self.state = SocketState(connected=False, since=since, last_error=error[:200])
        if self._said is not None and self._said[0] == error and now - self._said[1] < SAID_AGAIN_AFTER:
            return False
        self._said = (error, now)
        return True
