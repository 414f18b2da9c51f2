"""Signed, expiring values for the dashboard — session cookies and sign-in links — keyed from MONITORING_TOKEN.

Neither is the token: each is `<expiry>.<nonce>[.<Slack user id>].<HMAC>`, under a key derived from the token
for one purpose only, so a session cookie is never accepted as a link or the other way round, and changing
MONITORING_TOKEN signs every phone out. A link from `/sales link`, and the session it starts, name the Slack user
it was given to, so the dashboard can ask the access policy again on every request: someone no longer allowed to
read revenue is signed out there at once. A session from the typed token names nobody (its holder holds the
token). Nothing is stored server-side, so sessions survive restarts and work on every replica.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# Typing the token once on a phone should last: a month.
SESSION_LIFETIME: Final = dt.timedelta(days=30)
# A `/sales link` must be opened within 15 minutes, and signs that device in for a day only: the link sits in
# Slack, where a shoulder-surfer or a forwarded screenshot could reuse it before it expires.
LINK_LIFETIME: Final = dt.timedelta(minutes=15)
LINK_SESSION_LIFETIME: Final = dt.timedelta(hours=24)
MAX_SIGNED_LENGTH: Final = 200  # longer is not ours: refuse before computing anything


class Purpose(StrEnum):
    """What a signed value may be used for; each purpose has its own key."""

    SESSION = "session"
    LINK = "link"


@dataclass(frozen=True, slots=True)
class Signed:
    """A verified value: when it expires, its random id, and the Slack user it was given to (None: the token's
    holder)."""

    expires_at: dt.datetime
    nonce: str
    subject: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def derive_key(token: str, purpose: Purpose) -> bytes:
    """A key for one purpose, derived from the token (HMAC as a KDF), so the token itself never signs."""
    return hmac.new(token.encode("utf-8", "surrogatepass"), f"salespulse/dashboard/{purpose}/v1".encode(),
                    hashlib.sha256).digest()


def _mac(token: str, purpose: Purpose, body: str) -> str:
    return _b64(hmac.new(derive_key(token, purpose), body.encode("ascii"), hashlib.sha256).digest())


def sign(token: str, purpose: Purpose, *, expires_at: dt.datetime, nonce: str | None = None,
         subject: str | None = None) -> str:
    """`<unix expiry>.<nonce>[.<subject>].<mac>`: URL- and cookie-safe, no padding; `subject` a Slack id."""
    if subject is not None and not (subject.isascii() and subject.isalnum()):
        raise ValueError(f"not a Slack id: {subject[:40]!r}")
    body = f"{int(expires_at.timestamp())}.{nonce or secrets.token_urlsafe(12)}"
    body += f".{subject}" if subject else ""
    return f"{body}.{_mac(token, purpose, body)}"


def verify(token: str, purpose: Purpose, value: str | None, *, now: dt.datetime) -> Signed | None:
    """The value's contents when it was signed for `purpose` with this token and has not expired; else None."""
    if not value or len(value) > MAX_SIGNED_LENGTH or not value.isascii():
        return None
    body, dot, mac = value.rpartition(".")
    parts = body.split(".")
    if not (dot and mac and len(parts) in (2, 3) and parts[0].isdigit() and all(parts[1:])):
        return None
    if not hmac.compare_digest(mac, _mac(token, purpose, body)):
        return None
    expires_at = dt.datetime.fromtimestamp(int(parts[0]), dt.UTC)
    subject = parts[2] if len(parts) == 3 else None
    return Signed(expires_at, parts[1], subject) if expires_at > now else None


def token_matches(given: str, token: str) -> bool:
    """Constant time, and over digests so not even the token's length shows in the timing."""
    def digest(s: str) -> bytes:
        return hashlib.sha256(s.encode("utf-8", "surrogatepass")).digest()

    return hmac.compare_digest(digest(given), digest(token))


def sign_link(token: str, *, now: dt.datetime, subject: str | None = None) -> str:
    """A sign-in link's value for the Slack user `subject`, valid for LINK_LIFETIME."""
    return sign(token, Purpose.LINK, expires_at=now + LINK_LIFETIME, subject=subject)


def sign_session(token: str, *, now: dt.datetime, lifetime: dt.timedelta = SESSION_LIFETIME,
                 subject: str | None = None) -> str:
    """A session cookie's value, valid for `lifetime`, for the Slack user `subject` (None: the token's holder)."""
    return sign(token, Purpose.SESSION, expires_at=now + lifetime, subject=subject)
