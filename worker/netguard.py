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
from yarl import URL

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForbiddenAddress(aiohttp.ClientError):
    """The destination resolves to an address this worker may not call."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 (64:ff9b::/96) address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: Sequence[Network]) -> str | None:
    """Why a worker may not call `ip`, or None. Anything not globally routable is refused
    (loopback, RFC 1918, CGNAT, link-local/metadata, ULA, multicast, reserved, ...)."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_v4(ip) or ip
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    if ip.is_global and not ip.is_multicast:
        return None
    kinds = (("is_loopback", "loopback"), ("is_link_local", "link-local (cloud metadata)"),
             ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
             ("is_private", "private"), ("is_reserved", "reserved"))
    what = next((name for attr, name in kinds if getattr(ip, attr)), "non-public")
    return f"{ip} is a {what} address; allow it with --allow-net / SKIPLOCK_ALLOW_NET"


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
    # aiohttp signals request_start once; every redirect hop only signals request_redirect,
    # before it follows Location. Literal IPs never reach the resolver, so check both.
    tc = aiohttp.TraceConfig()

    async def on_start(_s: Any, _ctx: Any, params: Any) -> None:
        check_host(params.url.host or "", allow)

    async def on_redirect(_s: Any, _ctx: Any, params: Any) -> None:
        location = params.response.headers.get("Location")
        if location:
            check_host(params.url.join(URL(location)).host or "", allow)

    tc.on_request_start.append(on_start)
    tc.on_request_redirect.append(on_redirect)
    return tc
