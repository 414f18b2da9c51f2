"""`salespulse check`'s listen address: HOST taken as `run` (aiohttp, then asyncio's create_server) listens on it,
by the rules of the Python running it."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from typing import Any

from bot.config import Settings


def skips_unavailable() -> bool:
    """Whether this Python's asyncio create_server (so `run`) skips an address failing with EADDRNOTAVAIL and listens
    on the others: 3.13+ (bpo-30945, "assume the family is not enabled": ::1 with IPv6 off); before, it fails."""
    return sys.version_info >= (3, 13)


def _bind_each(host: str, found: list[Any]) -> tuple[list[str], str | None]:
    """Each address found bound on a spare port, as create_server binds them: those skipped (skips_unavailable),
    and why `run` could not listen, if it could not (a bind error, or no address bound)."""
    bound = 0
    skipped: list[str] = []
    for family, kind, proto, _, address in found:
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:  # a family this machine lacks: asyncio's create_server skips it too
            continue
        try:
            with probe:
                probe.bind((address[0], 0, *address[2:]))
            bound += 1
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL or not skips_unavailable():
                return skipped, _unusable(host, address[0], exc.errno, str(exc))
            skipped.append(address[0])
    return skipped, None if bound else _unusable(host, ", ".join(skipped) or "none", errno.EADDRNOTAVAIL, "")


def _unusable(host: str, where: str, code: int | None, said: str) -> str:
    what = "is not an address of this machine" if code == errno.EADDRNOTAVAIL else "cannot be listened on"
    return f"HOST {host!r} ({where}) {what}: {os.strerror(code) if code else said}"


async def check_listen_address(settings: Settings) -> bool:
    """HOST as `run` listens on it (aiohttp's getaddrinfo, passive, then asyncio's create_server): an IP address or
    a name that resolves, to an address of this machine — tried on a port of the system's choosing, as the bot may
    be running on PORT."""
    host, port = settings.host, settings.port
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode ("a..b")
        why = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        print(f"  listen address:   FAILED — HOST {host!r} is not an IP address or a name this machine resolves"
              f" ({why}): `run` cannot listen on it")
        return False
    skipped, failed = _bind_each(host, found)
    if failed is not None:
        print(f"  listen address:   FAILED — {failed}")
        return False
    also = f" ({', '.join(skipped)} skipped: not an address of this machine, as `run` skips it)" if skipped else ""
    print(f"  listen address:   ok — {f'[{host}]' if ':' in host else host}:{port}{also}")
    return True
