"""Checks for outgoing requests to URLs a tenant chose (webhooks), against server-side request forgery.

A tenant's URL must not make our servers call our own network: its host may not be, or resolve to, a loopback,
private, shared (CGNAT), link-local, multicast, reserved, documentation or unspecified address, in IPv4 or IPv6,
including IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, NAT64) and the legacy IPv4 spellings the C
resolver still accepts (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`). The scheme must be http or https and the URL
may not carry credentials.

`check_url` is the static part (no DNS). `resolve_url` adds the resolution: every address the name has must pass, and
the caller connects to exactly those addresses (`Target.addresses`) rather than resolving again, so a DNS answer that
changes between the check and the connection (rebinding) cannot reach a refused address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT: not is_private in every Python version
_LEGACY_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


class UnsafeURL(ValueError):
    """The URL may not be called: the message says why, in words a policy editor understands."""


class Unresolvable(OSError):
    """The host name has no address right now (DNS may recover: a delivery retries, a save accepts it)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: its parts and the addresses it may be connected to."""

    url: str
    scheme: str
    host: str  # as in the URL, lower-cased, without brackets, IDNA-encoded
    port: int
    addresses: tuple[IPAddress, ...] = ()


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address `inet_aton` makes of `host`: one to four dot-separated parts, each decimal, octal (leading 0) or
    hex (0x); the last part fills the remaining bytes (`127.1` is 127.0.0.1, `2130706433` is 127.0.0.1)."""
    parts = host.split(".")
    if host.endswith("."):
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if not _LEGACY_PART.fullmatch(part):
            return None
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            values.append(int(part[1:], 8))
        else:
            values.append(int(part, 10))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


def parse_ip(host: str) -> IPAddress | None:
    """`host` as an IP address, whichever way it is written, or None when it is a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    return _legacy_ipv4(host)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Is `ip` a global unicast address (and so is any IPv4 address it carries)?"""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public(inner):
            return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )


def _describe(ip: IPAddress) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public(inner):
            return _describe(inner)
    for name in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{name}", False):
            return name.replace("_", "-")
    return "non-public"


def check_address(ip: IPAddress, *, host: str, allow_private: bool) -> None:
    """Refuse a non-public address unless private addresses are allowed."""
    if not allow_private and not is_public(ip):
        shown = host if str(ip) == host else f"{host} ({ip})"
        raise UnsafeURL(f"The host {shown} is a {_describe(ip)} address; only public addresses can be called.")


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise UnsafeURL("The URL cannot be parsed.") from None
    return parts


def check_url(url: str, *, allow_private: bool) -> Target:
    """The static checks, without DNS: http(s), a host, no credentials, and no non-public IP literal or
    `localhost` name (unless `allow_private`). Raises `UnsafeURL`."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise UnsafeURL("Only an absolute http:// or https:// URL can be called.")
    if "@" in parts.netloc:
        raise UnsafeURL("The URL may not carry a user name or password.")
    host = parts.hostname.lower()
    if not host.isascii():
        try:  # as httpx encodes it, so the name resolved is the name in the Host header and the TLS SNI
            host = idna.encode(host).decode("ascii")
        except idna.IDNAError:
            raise UnsafeURL("The host name is not a valid internationalized domain name.") from None
    port = parts.port or DEFAULT_PORTS[scheme]
    ip = parse_ip(host)
    if ip is not None:
        check_address(ip, host=host, allow_private=allow_private)
        return Target(url, scheme, host, port, (ip,))
    name = host.rstrip(".")
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise UnsafeURL(f"The host {host} is a loopback name; only public addresses can be called.")
    return Target(url, scheme, host, port)


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address `host` resolves to for a TCP connection, in the resolver's order; `Unresolvable` when none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"The host {host} does not resolve ({exc}).") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise Unresolvable(f"The host {host} does not resolve.")
    return tuple(addresses)


def resolve_url(url: str, *, allow_private: bool) -> Target:
    """`check_url`, then resolve the host and check every address it has. Raises `UnsafeURL`, or `Unresolvable`
    when the name has no address now."""
    target = check_url(url, allow_private=allow_private)
    if target.addresses:
        return target
    addresses = resolve(target.host, target.port)
    for ip in addresses:
        check_address(ip, host=target.host, allow_private=allow_private)
    return Target(target.url, target.scheme, target.host, target.port, addresses)
