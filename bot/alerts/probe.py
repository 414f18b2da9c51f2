"""The site probe: GET SITE_URL once a minute and keep the result (status, time) for rules and /health.

It reads what a customer's browser would need to see that the site answers, and no more: at most MAX_BODY
bytes of the page, at most MAX_REDIRECTS hops and only within the site (SITE_URL's host, with or without
`www.`), bounded connect and total times. The result's text may reach Slack, so it carries no page content.
"""

from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

import aiohttp

from bot.clock import Clock
from queries.alerts import Probe

PROBE_TIMEOUT = 10.0  # a site slower than this is down for the customer anyway
CONNECT_TIMEOUT = 5.0
MAX_BODY = 64 * 1024  # enough to know the page is being served; a huge or endless body is not our business
MAX_REDIRECTS = 3


def _same_site(a: str, b: str) -> bool:
    host_a, host_b = (urlsplit(u).hostname or "" for u in (a, b))
    return host_a.removeprefix("www.") == host_b.removeprefix("www.") and bool(host_a)


async def _fetch(session: aiohttp.ClientSession, url: str, limit: float) -> tuple[int, str | None]:
    """(status, problem) after following up to MAX_REDIRECTS same-site redirects, the body capped."""
    timeout = aiohttp.ClientTimeout(total=limit, sock_connect=CONNECT_TIMEOUT)
    target = url
    for hop in range(MAX_REDIRECTS + 1):
        async with session.get(target, timeout=timeout, allow_redirects=False) as resp:
            await resp.content.read(MAX_BODY)  # the rest is discarded when the response closes
            location = resp.headers.get("Location")
            if resp.status not in (301, 302, 303, 307, 308) or not location:
                return resp.status, None
            following = urljoin(target, location)
            if not _same_site(url, following):
                return resp.status, f"redirected off-site to {urlsplit(following).hostname or '?'}"[:200]
            if hop == MAX_REDIRECTS:
                return resp.status, f"more than {MAX_REDIRECTS} redirects"
            target = following
    raise AssertionError("unreachable")  # the loop returns on its last hop


async def probe(session: aiohttp.ClientSession, url: str, *, clock: Clock, limit: float = PROBE_TIMEOUT) -> Probe:
    """One check: ok for a 2xx answer (after same-site redirects) within the timeout."""
    checked_at = clock()
    started = time.perf_counter()
    try:
        status, problem = await _fetch(session, url, limit)
    except TimeoutError:
        return Probe(checked_at, False, None, (time.perf_counter() - started) * 1000, f"no answer in {limit:.0f} s")
    except (aiohttp.ClientError, OSError) as exc:
        return Probe(checked_at, False, None, (time.perf_counter() - started) * 1000,
                     f"{type(exc).__name__}: {exc}"[:300])
    elapsed = (time.perf_counter() - started) * 1000
    ok = problem is None and 200 <= status < 400
    return Probe(checked_at, ok, status, elapsed, None if ok else problem or f"HTTP {status}")
