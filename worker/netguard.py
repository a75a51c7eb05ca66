"""Outbound HTTP guard: refuse loopback, private, link-local (cloud metadata), multicast and
reserved addresses unless allowed with --allow-net. Checked after DNS resolution (a custom
resolver) and on every request and redirect (for literal IPs, which skip the resolver)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForbiddenAddress(aiohttp.ClientError):
    """The destination resolves to an address this worker may not call."""


def forbidden_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: Sequence[Network]) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allow):
        return None
    for attr, what in (("is_loopback", "loopback"), ("is_link_local", "link-local (cloud metadata)"),
                       ("is_private", "private"), ("is_multicast", "multicast"),
                       ("is_reserved", "reserved"), ("is_unspecified", "unspecified")):
        if getattr(ip, attr):
            return f"{ip} is a {what} address; allow it with --allow-net / SKIPLOCK_ALLOW_NET"
    return None


def check_host(host: str, allow: Sequence[Network]) -> None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    reason = forbidden_reason(ip, allow)
    if reason:
        raise ForbiddenAddress(reason)


class GuardedResolver(AbstractResolver):
    def __init__(self, allow: Sequence[Network]) -> None:
        self.allow = tuple(allow)
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        ok = [r for r in results if forbidden_reason(ipaddress.ip_address(r["host"]), self.allow) is None]
        if not ok:
            reason = forbidden_reason(ipaddress.ip_address(results[0]["host"]), self.allow)
            raise ForbiddenAddress(f"{host} resolves to {reason}")
        return ok

    async def close(self) -> None:
        await self._inner.close()


def trace_config(allow: Sequence[Network]) -> aiohttp.TraceConfig:
    # aiohttp signals request start for the first request and for every redirect hop.
    tc = aiohttp.TraceConfig()

    async def on_start(_s: Any, _ctx: Any, params: Any) -> None:
        check_host(params.url.host or "", allow)

    tc.on_request_start.append(on_start)
    return tc
