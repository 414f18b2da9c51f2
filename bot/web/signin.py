"""The dashboard's session cookie on the wire, and the limit on failed sign-ins per client address."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Final

from aiohttp import web

from bot.web.session import Purpose, Signed, verify

COOKIE: Final = "salespulse_session"
# Only the dashboard's own routes ever see the cookie (the JSON API keeps its bearer token).
COOKIE_PATH: Final = "/dashboard"
# The key under which /slack/events hands Bolt's listeners the request's origin (request_origin()).
ORIGIN: Final = "salespulse_origin"


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _trusted(address: str, proxies: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def is_https(request: web.Request, proxies: Networks) -> bool:
    """Served over TLS, directly or behind a TRUSTED_PROXIES proxy that says so (X-Forwarded-Proto)."""
    if _trusted(request.remote or "", proxies):
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return (forwarded or request.scheme) == "https"
    return request.scheme == "https"


def request_origin(request: web.Request, proxies: Networks) -> str:
    """The scheme and host this request was sent to ("https://sales.example"): what a link back to this server in
    the reply should start with. A TRUSTED_PROXIES proxy's X-Forwarded-Proto and X-Forwarded-Host are believed."""
    host = request.host
    if _trusted(request.remote or "", proxies):
        host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip() or host
    return f"{'https' if is_https(request, proxies) else 'http'}://{host}"


def client_address(request: web.Request, proxies: Networks) -> str:
    """The address sign-in attempts are counted against.

    X-Forwarded-For is believed only when the connection comes from TRUSTED_PROXIES, and then read from the
    right, skipping our own proxies: the first address a trusted proxy vouches for. Anyone else could rotate
    that header (or, on a private network, pick their own bucket) to escape the limit.
    """
    peer = request.remote or "unknown"
    if not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
    return hops[0][:64] if hops else peer


def _secure(request: web.Request, proxies: Networks, public_url: str | None) -> bool:
    # Over https, or when PUBLIC_URL says people reach us over https (a TLS proxy not in TRUSTED_PROXIES): then a
    # stray http:// request must not carry the session in clear text.
    return is_https(request, proxies) or (public_url or "").lower().startswith("https://")


def set_session(response: web.StreamResponse, request: web.Request, value: str, *,
                lifetime: dt.timedelta, proxies: Networks, public_url: str | None) -> None:
    """Set the cookie: HttpOnly (no script reads it), SameSite=Strict, Secure over https (or an https PUBLIC_URL),
    path /dashboard.

    Strict holds even for the Slack link flow: the page itself is the same for everyone and loads its
    figures with a same-origin fetch, which carries a Strict cookie even when the page was reached from a
    link in another site or app.
    """
    response.set_cookie(COOKIE, value, max_age=int(lifetime.total_seconds()), path=COOKIE_PATH,
                        httponly=True, samesite="Strict", secure=_secure(request, proxies, public_url))


def clear_session(response: web.StreamResponse, request: web.Request, proxies: Networks,
                  public_url: str | None) -> None:
    """Sign this browser out."""
    response.del_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=_secure(request, proxies, public_url))


def session_of(request: web.Request, token: str, *, now: dt.datetime) -> Signed | None:
    """The request's session cookie, when signed with this token and not expired."""
    return verify(token, Purpose.SESSION, request.cookies.get(COOKIE), now=now)


class FailureLimiter:
    """At most `limit` sign-in attempts per address in a sliding `window` until one succeeds; memory bounded by
    `max_addresses`. An attempt is counted when it starts, before it is judged, with no await in between, so
    parallel attempts cannot all pass the check before any of them is counted."""

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

    def attempt(self, address: str) -> int:
        """Count an attempt now; 0 when it may proceed, else the seconds to wait (and it is not counted)."""
        if wait := self.retry_after(address):
            return wait
        self.failed(address)
        return 0

    def failed(self, address: str) -> None:
        """Count one attempt against the address."""
        failures = self._recent(address)
        failures.append(self._clock())
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > self._max:  # forget the addresses that failed longest ago
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """Forget an address's failures once it signs in."""
        self._failures.pop(address, None)


# One limiter per process for every check of a token a client could guess: the dashboard's sign-in form and the
# bearer of /api/monitoring/*, /metrics and /webhooks/events share it, so no door buys fresh attempts.
TOKEN_GUESSES: Final = web.AppKey("token_guesses", FailureLimiter)
