"""SSRF guard: what an http task may reach from `skiplock worker`."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from skiplock.worker.netguard import ForbiddenAddress, GuardedResolver, check_host, forbidden_reason

NONE: tuple = ()


@pytest.mark.parametrize("addr", [
    "127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "10.1.2.3", "172.16.0.1", "192.168.1.1",
    "100.64.0.1", "169.254.169.254", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "64:ff9b::a00:1", "2002:7f00:1::", "224.0.0.1", "ff02::1", "192.0.2.1", "198.18.0.1", "240.0.0.1",
])
def test_non_public_addresses_are_refused(addr: str) -> None:
    reason = forbidden_reason(ipaddress.ip_address(addr), NONE)
    assert reason is not None and "--allow-net" in reason


@pytest.mark.parametrize("addr", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(addr: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(addr), NONE) is None


def test_allow_net_opens_exactly_its_ranges() -> None:
    allow = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert forbidden_reason(ipaddress.ip_address("10.9.9.9"), allow) is None
    assert forbidden_reason(ipaddress.ip_address("::ffff:10.9.9.9"), allow) is None
    assert forbidden_reason(ipaddress.ip_address("::1"), allow) is None
    assert forbidden_reason(ipaddress.ip_address("127.0.0.1"), allow) is not None
    assert forbidden_reason(ipaddress.ip_address("192.168.0.1"), allow) is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "169.254.169.254", "[::ffff:127.0.0.1]"])
def test_literal_hosts_are_checked(host: str) -> None:
    with pytest.raises(ForbiddenAddress):
        check_host(host, NONE)


@pytest.mark.parametrize("name", ["localhost", "2130706433", "0177.0.0.1", "0x7f.1", "127.1"])
async def test_names_and_odd_ip_spellings_are_checked_after_resolution(name: str) -> None:
    resolver = GuardedResolver(NONE)
    try:
        with pytest.raises(ForbiddenAddress):
            await resolver.resolve(name, 80, socket.AF_INET)
    finally:
        await resolver.close()
