"""Standard Webhooks signatures (standardwebhooks.com) on outbound http requests, so a
receiver verifies them with the `standardwebhooks` package in two lines:

    from standardwebhooks import Webhook
    Webhook(secret).verify(body, headers)   # raises WebhookVerificationError when forged

Written out rather than importing that package on every worker: it is an HMAC-SHA256 over
"{id}.{timestamp}.{body}" with the base64 secret after "whsec_", sent as "v1,<base64>".
The suite checks it against the real package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

PREFIX = "whsec_"


def key(secret: str) -> bytes:
    """The secret's key bytes; ValueError when it is not `whsec_` + base64."""
    try:
        raw = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not secret.startswith(PREFIX) or len(raw) < 16:
        raise ValueError("SKIPLOCK_WEBHOOK_SECRET must be whsec_ followed by base64 of at least 16 bytes "
                         "(e.g. whsec_$(openssl rand -base64 32))")
    return raw


def headers(secret_key: bytes, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    ts = str(int(now if now is not None else time.time()))
    mac = hmac.new(secret_key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}
