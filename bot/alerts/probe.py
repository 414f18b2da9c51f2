"""The site probe: GET SITE_URL once a minute and keep the result (status, time) for rules and /health."""

from __future__ import annotations

import time

import aiohttp

from bot.clock import Clock
from queries.alerts import Probe

PROBE_TIMEOUT = 10.0  # a site slower than this is down for the customer anyway


async def probe(session: aiohttp.ClientSession, url: str, *, clock: Clock, limit: float = PROBE_TIMEOUT) -> Probe:
    """One check: ok for any 2xx/3xx answer within the timeout."""
    checked_at = clock()
    started = time.perf_counter()
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=limit), allow_redirects=True) as resp:
            await resp.read()
            elapsed = (time.perf_counter() - started) * 1000
            ok = 200 <= resp.status < 400
            return Probe(checked_at, ok, resp.status, elapsed, None if ok else f"HTTP {resp.status}")
    except TimeoutError:
        return Probe(checked_at, False, None, (time.perf_counter() - started) * 1000, f"no answer in {limit:.0f} s")
    except (aiohttp.ClientError, OSError) as exc:
        return Probe(checked_at, False, None, (time.perf_counter() - started) * 1000,
                     f"{type(exc).__name__}: {exc}"[:300])
