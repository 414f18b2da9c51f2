"""Stripe-Signature verification over the raw body, with several secrets during rotation."""

from __future__ import annotations

from collections.abc import Sequence

from stripe import SignatureVerificationError, WebhookSignature

# Stripe's own default: https://docs.stripe.com/webhooks#verify-manually (replay protection window).
TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    """The request is not signed by any configured endpoint secret; the message says why."""


def verify(body: bytes, header: str | None, secrets: Sequence[str], *,
           tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise BadSignature unless some `v1` entry of `header` is the HMAC of `body` under some secret."""
    if not header:
        raise BadSignature("missing Stripe-Signature header")
    if not header.isascii():  # hex signatures and digits only: anything else could never match (and hmac refuses it)
        raise BadSignature("malformed Stripe-Signature header")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("body is not valid UTF-8") from None
    reason = "no signing secret configured"
    for secret in secrets:
        try:
            # stripe-python checks every v1 entry, ignores v0 and rejects timestamps older than tolerance.
            WebhookSignature.verify_header(text, header, secret, tolerance)
            return
        except SignatureVerificationError as exc:
            reason = str(exc.user_message or exc)
    raise BadSignature(reason)
