"""Slack request signing (v0): computing and verifying `X-Slack-Signature`."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

# Slack's documented replay window: reject requests older than five minutes.
MAX_CLOCK_SKEW_SECONDS = 5 * 60


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the `v0=` signature Slack sends for a body at a timestamp."""
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def signed_headers(
    secret: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(secret, stamp, body),
    }


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
) -> Verdict:
    """Check a request's signature over its raw body, and its age."""
    if not timestamp or not signature:
        return Verdict(False, "missing signature headers")
    try:
        stamp = int(timestamp)
    except ValueError:
        return Verdict(False, "invalid timestamp header")
    skew = abs((time.time() if now is None else now) - stamp)
    if skew > MAX_CLOCK_SKEW_SECONDS:
        return Verdict(
            False,
            f"timestamp outside the 5 minute window by {int(skew)} s (check the clock)",
        )
    expected = sign(secret, timestamp, body)
    # Compare bytes: compare_digest rejects str arguments with non-ASCII text.
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return Verdict(False, "bad signature")
    return Verdict(True)
