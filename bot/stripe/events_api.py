"""A read-only client for Stripe's list endpoints: events, checkout sessions, payment intents.

Plain aiohttp rather than the `stripe` package: salespulse makes one kind of call (a GET of a list), needs
each page's 429/5xx/401 told apart to decide between "wait and retry", "keep the cursor, try next minute"
and "the key is wrong", and keeps each event as JSON to store it like a webhook body. The package's own
retry loop (which ignores a bare 429) and object model would sit between us and those decisions.
Only GETs are made, so a restricted key (`rk_…`) with read access to Events — plus Checkout Sessions and
PaymentIntents for `salespulse backfill` — is enough: https://docs.stripe.com/keys#limit-access
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from bot import __version__

log = logging.getLogger(__name__)

PAGE_LIMIT = 100  # Stripe's maximum page size
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5)
# A 429 is waited out at most this many times per request (Retry-After when given, else 1, 2, 4 s) and
# never longer than MAX_WAIT each: past that the run gives up and the next minute's run resumes.
RATE_LIMIT_RETRIES = 3
MAX_WAIT = 30.0

Params = Sequence[tuple[str, str]]
Sleep = Callable[[float], Awaitable[None]]


# The restricted-key permission each path the bot reads needs, as the Stripe dashboard names them: a 403 names the
# one that was missing, not a fixed list (a key missing Webhook Endpoints: read was told to add Events: read).
PERMISSIONS: Final = (("/v1/events", "Events: read"), ("/v1/checkout/sessions", "Checkout Sessions: read"),
                      ("/v1/payment_intents", "PaymentIntents: read"), ("/v1/charges", "Charges: read"),
                      ("/v1/refunds", "Refunds: read"), ("/v1/disputes", "Disputes: read"),
                      ("/v1/invoice_payments", "Invoices: read"), ("/v1/invoices", "Invoices: read"),
                      ("/v1/subscriptions", "Subscriptions: read"), ("/v1/coupons", "Coupons: read"),
                      ("/v1/balance_transactions", "Balance: read"), ("/v1/account", "Account: read"),
                      ("/v1/prices", "Prices: read"), ("/v1/webhook_endpoints", "Webhook Endpoints: read"))


def permission_name(path: str) -> str | None:
    """The dashboard's name of the permission a restricted key needs to read `path`; None for a path not listed."""
    return next((name for prefix, name in PERMISSIONS if path.startswith(prefix)), None)


def permission_for(path: str) -> str:
    """The permission a restricted key needs to read `path` (and the objects it expands: those read too)."""
    return (permission_name(path) or "read access to this resource") + " (and read access to what it expands)"


class StripeApiError(Exception):
    """Stripe answered an error (or could not be reached); `str()` is one line for logs and /health."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class KeyRejected(StripeApiError):
    """401/403: STRIPE_API_KEY is wrong, revoked, or a restricted key without the read permission."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 permission: str | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.permission = permission  # a 403's: the restricted-key permission to grant, as the dashboard names it


class Unavailable(StripeApiError):
    """5xx, timeouts, network errors, or still rate limited after the bounded waits: try again later."""


class CursorGone(StripeApiError):
    """The object a cursor names no longer exists (Stripe keeps events for 30 days)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a Stripe list, newest first as Stripe returns it."""

    data: list[dict[str, Any]]
    has_more: bool


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _error_of(text: str) -> tuple[str | None, str]:
    """(code, message) from Stripe's `{"error": {...}}` body, tolerating anything else."""
    try:
        error = json.loads(text).get("error") or {}
        return error.get("code"), str(error.get("message") or "")[:300]
    except (ValueError, AttributeError):
        return None, text[:200]


class StripeApi:
    """GETs against STRIPE_API_URL with the key as a Bearer token."""

    def __init__(self, session: aiohttp.ClientSession, *, api_key: str, base_url: str,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        # No Stripe-Version header: events come rendered in the account's API version, as webhooks do.
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": f"salespulse/{__version__}"}
        self._sleep = sleep
        self.answered = 0  # requests Stripe answered 200: a job refused before knows the refusal is over

    async def list(self, path: str, params: Params) -> Page:
        """One page of `path` (e.g. /v1/events); 429s are waited out a bounded number of times."""
        return self._page(path, await self._read(path, params))

    async def get(self, path: str, params: Params = ()) -> dict[str, Any]:
        """One object (e.g. /v1/charges/ch_…), with the same bounded 429 waits."""
        text = await self._read(path, params)
        try:
            body = json.loads(text, parse_constant=_reject_constant)
            if not isinstance(body, dict) or not isinstance(body.get("object"), str):
                raise ValueError("not a Stripe object")
            return body
        except (ValueError, RecursionError) as exc:
            raise Unavailable(f"GET {path}: Stripe's answer is not an object: {exc}") from None

    async def _read(self, path: str, params: Params) -> str:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            status, text, retry_after = await self._get(path, params)
            if status == 200:
                self.answered += 1
                return text
            code, message = _error_of(text)
            if status == 429 and attempt < RATE_LIMIT_RETRIES:
                wait = self._wait(retry_after, attempt)
                log.info("Stripe rate limit on %s: waiting %.1f s (attempt %d)", path, wait, attempt + 1)
                await self._sleep(wait)
                continue
            raise self._error(path, status, code, message)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def pages(self, path: str, params: Params, *, after: str | None = None) -> AsyncIterator[Page]:
        """Every page of a list, following `has_more` with `starting_after` (newest to oldest); from the object
        after `after` when given (the 10 refunds a Charge embeds were read already)."""
        while True:
            page = await self.list(path, [*params, ("limit", str(PAGE_LIMIT)),
                                          *([("starting_after", after)] if after else [])])
            yield page
            if not page.has_more or not page.data:
                return
            after = page.data[-1]["id"]

    async def _get(self, path: str, params: Params) -> tuple[int, str, str | None]:
        try:
            async with self._session.get(self._base + path, params=list(params), headers=self._headers,
                                         timeout=REQUEST_TIMEOUT, allow_redirects=False) as resp:
                return resp.status, await resp.text(), resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach {self._base}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc

    @staticmethod
    def _wait(retry_after: str | None, attempt: int) -> float:
        try:
            wait = float(retry_after) if retry_after is not None else 2.0 ** attempt
        except ValueError:
            wait = 2.0 ** attempt
        return min(max(wait, 0.0), MAX_WAIT)

    @staticmethod
    def _page(path: str, text: str) -> Page:
        try:
            body = json.loads(text, parse_constant=_reject_constant)
            data = body["data"]
            if not isinstance(data, list) or not all(isinstance(d, dict) and isinstance(d.get("id"), str)
                                                     for d in data):
                raise ValueError("`data` is not a list of objects with ids")
            return Page(data=data, has_more=body.get("has_more") is True)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise Unavailable(f"GET {path}: Stripe's answer is not a list: {exc}") from None

    @staticmethod
    def _error(path: str, status: int, code: str | None, message: str) -> StripeApiError:
        detail = f"GET {path}: HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        if status in (401, 403):
            hint = "STRIPE_API_KEY was rejected" if status == 401 else \
                f"STRIPE_API_KEY may not read this: a restricted key needs {permission_for(path)}"
            return KeyRejected(f"{hint} — {detail}", status=status, code=code,
                               permission=permission_name(path) if status == 403 else None)
        if status in (400, 404) and code == "resource_missing":
            return CursorGone(detail, status=status, code=code)
        if status == 429 or status >= 500:
            return Unavailable(detail, status=status, code=code)
        return StripeApiError(detail, status=status, code=code)
