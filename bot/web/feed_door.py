"""Who the local feed answers: a browser on the bot's own machine, and nobody else; and where, for the HOST set, one
opens it (the demo's banner, the 403 page, the start-up log).

The feed acts as the store's owner with no sign-in (`bot.access.LOCAL_OWNER` passes every check), so the socket
peer must be loopback. That alone is not enough: a reverse proxy on the same machine (local mode deployed so that
Stripe's webhooks reach it) connects from loopback too, on behalf of anyone on the internet; the headers such a
proxy adds give it away. The Host check against DNS rebinding stays in `handlers/web/feed.py`.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from bot.config import Settings

# What a proxy adds when it forwards a request; a browser on this machine sends none of them.
FORWARDING_HEADERS: Final = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host", "X-Forwarded-Proto")


def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%", 1)[0]).is_loopback  # "::1%lo": a scoped address
    except ValueError:  # a Unix socket, or no peer at all
        return False


def from_this_machine(request: web.Request) -> bool:
    """Whether the request comes straight from a browser on this machine: a loopback peer, nothing forwarded."""
    return _loopback(request.remote) and not any(name in request.headers for name in FORWARDING_HEADERS)


# HOST values that listen on every interface, loopback included: the address a browser here opens instead.
WILDCARDS: Final = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def feed_url(settings: Settings) -> str | None:
    """Where a browser on this machine opens the feed: HOST when it is loopback (or a name, taken at its word),
    127.0.0.1 or ::1 when HOST is every interface. None when HOST is one address beyond loopback: nothing then
    listens where the feed answers (a browser here connecting to that address comes from it, not from loopback)."""
    host = WILDCARDS.get(settings.host, settings.host)
    if _literal(host) and not _loopback(host):
        return None
    return f"http://[{host}]:{settings.port}/" if ":" in host else f"http://{host}:{settings.port}/"


def _remedy(settings: Settings, *, where: str = "this machine") -> str:
    return f"restart with HOST=0.0.0.0 or HOST=127.0.0.1, then open http://127.0.0.1:{settings.port}/ on {where}"


def unreachable(settings: Settings) -> str:
    """Why no browser can open the feed with this HOST (`feed_url` is None), and what to do for it."""
    return (f"it answers only on this machine's loopback, where HOST={settings.host} does not listen:"
            f" {_remedy(settings)}")


def where_messages_show(settings: Settings) -> str:
    """For the start-up log: where local mode's messages can be seen."""
    url = feed_url(settings)
    return f"messages print here and on {url}" if url else \
        f"messages print here, not on the local feed: {unreachable(settings)}"


def refusal(settings: Settings) -> str:
    """Why the feed is refused here, and what to use instead."""
    why = ("The local feed acts as the store's owner with no sign-in, so it answers only a browser on the machine"
           " the bot runs on (connecting to 127.0.0.1 or ::1, not through a proxy).")
    url = feed_url(settings)
    # A full URL where it is known to reach the bot from elsewhere; else relative: "localhost" would be the reader's.
    base = settings.public_base_url if settings.public_url or url is None else ""
    dashboard = f"the dashboard ({base}/dashboard, with MONITORING_TOKEN or a sign-in link)"
    if url is None:
        remedy = _remedy(settings, where="the bot's machine")
        return (f"{why} With HOST={settings.host} no browser can, as the bot does not listen on loopback:"
                f" {remedy}. From elsewhere (a phone), use {dashboard}.")
    target = urlsplit(url).netloc.rsplit(":", 1)[0]  # the loopback host, bracketed if IPv6
    return (f"{why} From elsewhere, use {dashboard}, or an SSH tunnel: ssh -L {settings.port}:{target}:"
            f"{settings.port} <the server>, then open http://127.0.0.1:{settings.port}/ here.")


def exposure_warning(settings: Settings) -> str | None:
    """In local mode, a warning when the bot is reachable from elsewhere (a non-loopback HOST, or PUBLIC_URL set):
    the feed refuses those clients, but the operator should know it is there. None when there is nothing to say."""
    if not settings.local_mode:
        return None
    reasons = []
    if settings.host != "localhost" and not _loopback(settings.host):
        reasons.append(f"HOST={settings.host} listens beyond this machine")
    if settings.public_url:
        reasons.append(f"PUBLIC_URL={settings.public_url} is set")
    if not reasons:
        return None
    unopened = "" if feed_url(settings) else f"; with this HOST none can ({_remedy(settings)})"
    return (f"local mode with {' and '.join(reasons)}: the local feed (/) acts as the owner without sign-in, so it"
            f" answers only browsers on this machine (loopback, nothing forwarded by a proxy){unopened}; the"
            " figures from elsewhere are on /dashboard with MONITORING_TOKEN. A proxy in front must add"
            " X-Forwarded-For, or not route / to the bot at all.")
