"""The dashboard's session cookie on the wire, and the limit on failed sign-ins per client address."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

from aiohttp import web

from bot.web.session import Purpose, verify

COOKIE: Final = "salespulse_session"
# Only the dashboard's own routes ever see the cookie (the JSON API keeps its bearer token).
COOKIE_PATH: Final = "/dashboard"


def is_https(request: web.Request) -> bool:
    """Served over TLS, directly or behind a proxy that says so (X-Forwarded-Proto's first hop)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    # Trusting the header blindly is safe here: it can only add the Secure flag to the sender's own cookie.
    return (forwarded or request.scheme) == "https"


def client_address(request: web.Request) -> str:
    """The address failed sign-ins are counted against.

    X-Forwarded-For's last entry (the one our proxy appended) counts only when the connection itself comes
    from a loopback or private address, i.e. from a reverse proxy: anyone else could rotate that header to
    escape the limit.
    """
    peer = request.remote or "unknown"
    try:
        behind_proxy = ipaddress.ip_address(peer).is_private  # loopback is private too
    except ValueError:
        behind_proxy = False
    forwarded = request.headers.get("X-Forwarded-For", "")
    if behind_proxy and forwarded.strip():
        return forwarded.split(",")[-1].strip()[:64] or peer
    return peer


def set_session(response: web.StreamResponse, request: web.Request, value: str, *,
                lifetime: dt.timedelta) -> None:
    """Set the cookie: HttpOnly (no script reads it), SameSite=Strict, Secure over https, path /dashboard.

    Strict holds even for the Slack link flow: the page itself is the same for everyone and loads its
    figures with a same-origin fetch, which carries a Strict cookie even when the page was reached from a
    link in another site or app.
    """
    response.set_cookie(COOKIE, value, max_age=int(lifetime.total_seconds()), path=COOKIE_PATH,
                        httponly=True, samesite="Strict", secure=is_https(request))


def clear_session(response: web.StreamResponse, request: web.Request) -> None:
    """Sign this browser out."""
    response.del_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=is_https(request))


def has_session(request: web.Request, token: str, *, now: dt.datetime) -> bool:
    """The request carries a session cookie signed with this token that has not expired."""
    return verify(token, Purpose.SESSION, request.cookies.get(COOKIE), now=now) is not None


class FailureLimiter:
    """At most `limit` failed attempts per address in a sliding `window`; memory bounded by `max_addresses`."""

    def __init__(self, *, limit: int = 5, window: float = 900.0, max_addresses: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._max = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        cutoff = self._clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures

    def retry_after(self, address: str) -> int:
        """Seconds until this address may try again; 0 when it may try now."""
        failures = self._recent(address)
        if len(failures) < self.limit:
            return 0
        return max(1, int(failures[0] + self.window - self._clock()) + 1)

    def failed(self, address: str) -> None:
        """Count one failed attempt."""
        failures = self._recent(address)
        failures.append(self._clock())
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > self._max:  # forget the addresses that failed longest ago
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """Forget an address's failures once it signs in."""
        self._failures.pop(address, None)
