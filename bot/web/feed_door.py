"""Who the local feed answers: a browser on the bot's own machine, and nobody else.

The feed acts as the store's owner with no sign-in (`bot.access.LOCAL_OWNER` passes every check), so the socket
peer must be loopback. That alone is not enough: a reverse proxy on the same machine (local mode deployed so that
Stripe's webhooks reach it) connects from loopback too, on behalf of anyone on the internet; the headers such a
proxy adds give it away. The Host check against DNS rebinding stays in `handlers/web/feed.py`.
"""

from __future__ import annotations

import ipaddress
from typing import Final

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


def refusal(settings: Settings) -> str:
    """Why the feed is refused here, and what to use instead."""
    return (f"The local feed acts as the store's owner with no sign-in, so it answers only a browser on the machine"
            f" the bot runs on (connecting to 127.0.0.1 or ::1, not through a proxy). From elsewhere, use the"
            f" dashboard (/dashboard, with MONITORING_TOKEN), or an SSH tunnel: ssh -L {settings.port}:127.0.0.1:"
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
    return (f"local mode with {' and '.join(reasons)}: the local feed (/) acts as the owner without sign-in, so it"
            " answers only browsers on this machine (loopback, nothing forwarded by a proxy); the figures from"
            " elsewhere are on /dashboard with MONITORING_TOKEN. A proxy in front must add X-Forwarded-For, or"
            " not route / to the bot at all.")
