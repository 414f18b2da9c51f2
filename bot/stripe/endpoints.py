"""`salespulse check` with STRIPE_API_KEY: read the account's webhook endpoints and say what is missing.

Stripe sends an endpoint only the event types enabled on it, each rendered in the API version the endpoint is
pinned to (the account's default when it is not pinned). A missing type is a class of sales the bot never hears
of; the version decides the payload shapes (https://docs.stripe.com/webhooks/versioning). GET only: a restricted
key with "Webhook Endpoints: read" is enough.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.stripe.events_api import StripeApi
from bot.stripe.parse import HANDLED_TYPES

ENDPOINTS_PATH = "/v1/webhook_endpoints"
# From this version on, invoices no longer name their PaymentIntent: `invoice_payment.paid` links them.
BASIL = "2025-03-31"


@dataclass(frozen=True, slots=True)
class EndpointReview:
    """One endpoint and what the bot thinks of it."""

    url: str
    status: str
    api_version: str | None
    missing: tuple[str, ...]

    @property
    def lines(self) -> list[str]:
        """What `salespulse check` prints for it."""
        version = self.api_version or "the account's default version"
        said = [f"{self.url} ({self.status}, pinned to {version})"]
        if self.status != "enabled":
            said.append("  WARNING: this endpoint is disabled: Stripe sends it nothing")
        if self.missing:
            said.append(f"  WARNING: not subscribed to {', '.join(self.missing)}: enable them in the Stripe"
                        " dashboard (README: Stripe events and API versions)")
        if self.api_version is None:
            said.append("  note: unpinned endpoints follow the account's version; pin one so upgrades are deliberate")
        elif self.api_version >= BASIL and "invoice_payment.paid" in self.missing:
            said.append("  WARNING: on basil and later, subscription payments need invoice_payment.paid to be"
                        " counted once")
        return said


def review(endpoint: dict[str, object], handled: Iterable[str] = HANDLED_TYPES) -> EndpointReview:
    """Judge one webhook endpoint object as Stripe returns it."""
    enabled = endpoint.get("enabled_events")
    events = {str(e) for e in enabled} if isinstance(enabled, list) else set()
    missing = () if "*" in events else tuple(sorted(set(handled) - events))
    version = endpoint.get("api_version")
    return EndpointReview(url=str(endpoint.get("url") or "?"), status=str(endpoint.get("status") or "?"),
                          api_version=version if isinstance(version, str) and version else None, missing=missing)


async def review_endpoints(api: StripeApi, *, public_url: str | None) -> tuple[list[str], bool]:
    """The lines to print for every endpoint, and whether all is well (an enabled endpoint gets every event)."""
    reviews = [review(e) async for page in api.pages(ENDPOINTS_PATH, []) for e in page.data]
    ours = [r for r in reviews if public_url is None or r.url.startswith(public_url.rstrip("/"))]
    lines = [line for r in reviews for line in r.lines]
    if not reviews:
        return ["WARNING: no webhook endpoint on this account: add one for /webhooks/stripe"], False
    if public_url is not None and not ours:
        lines.append(f"WARNING: no endpoint points at {public_url}/webhooks/stripe")
    ok = any(r.status == "enabled" and not r.missing for r in (ours or reviews))
    return lines, ok
