"""Bearer tokens on gRPC metadata, compared in constant time."""

from __future__ import annotations

import hmac

import grpc


def bearer_ok(context: grpc.aio.ServicerContext, token: str | None) -> bool:
    """True when no token is required, or the call carries `authorization: Bearer <token>`."""
    if not token:
        return True
    md = dict(context.invocation_metadata() or ())
    return hmac.compare_digest(str(md.get("authorization", "")).encode(), f"Bearer {token}".encode())
