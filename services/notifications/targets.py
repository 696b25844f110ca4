"""Where partner webhooks may point: public addresses only, re-checked at every delivery (SSRF guard).

A webhook URL is chosen by an operator but its host name is resolved by DNS, which the partner (or
whoever controls that zone) can change at any time. So the rule is applied twice: when the endpoint
is registered (a clear 422 `webhook_target_forbidden`) and again just before each delivery, on every
address the name resolves to then (DNS rebinding). The delivery connects to the address that was
checked, never re-resolving in between.

Refused: loopback, link-local (169.254/16, fe80::/10), private ranges (10/8, 172.16/12, 192.168/16,
fc00::/7), shared address space (100.64/10), unspecified, multicast, reserved, and the platform's own
service addresses (`IIOE_<SVC>_URL`, `certification_url`). An operator allow-list
(`IIOE_NOTIFICATIONS_WEBHOOK_ALLOW=127.0.0.1:9000,hooks.example.org`) names `host` or `host:port`
targets that are accepted anyway (a partner inside the campus network, a local test receiver).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) → addresses`; raises OSError when the name does not resolve."""

FORBIDDEN: Final = "webhook_target_forbidden"
UNRESOLVABLE: Final = "webhook_target_unresolvable"
_SHARED_ADDRESS_SPACE: Final = ipaddress.ip_network("100.64.0.0/10")
_PLATFORM_URL_VARS: Final = (
    "IIOE_REGISTRATION_URL",
    "IIOE_CERTIFICATION_URL",
    "IIOE_ANALYTICS_URL",
    "IIOE_NOTIFICATIONS_URL",
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
PLATFORM_CACHE_SECONDS: Final = 300.0


class TargetRefused(ValueError):
    """The webhook target is not allowed (`code` = `webhook_target_forbidden` or `…_unresolvable`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    """A checked target: the URL as registered and the address the delivery must connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


def _split(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise TargetRefused(FORBIDDEN, "a webhook URL must be http(s)://host[:port]/path")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise TargetRefused(FORBIDDEN, f"invalid port in webhook URL: {exc}") from exc
    return scheme, parts.hostname.lower().rstrip("."), port


def _ip(value: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forbidden_range(address: IpAddress) -> str | None:
    """Why an address may not receive webhooks, or None for a public unicast address."""
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_unspecified, "unspecified"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE, "shared (100.64/10)"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    )
    return next((why for hit, why in checks if hit), None)


def _entry(raw: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address → (host, port or None)."""
    raw = raw.strip().lower()
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if raw.count(":") == 1:
        host, _, port = raw.partition(":")
        return host, int(port)
    return raw, None


def platform_urls(extra: Iterable[str] = ()) -> list[str]:
    """The platform's own service URLs: `IIOE_<SVC>_URL` from the environment plus any given."""
    return [*(os.environ[v] for v in _PLATFORM_URL_VARS if os.environ.get(v)), *extra]


class TargetPolicy:
    """The rule for webhook targets; `resolver` is injectable so tests need no DNS."""

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        platform: Iterable[str] = (),
        resolver: Resolver | None = None,
    ) -> None:
        self._allow = {_entry(a) for a in allow if a.strip()}
        self._platform: set[tuple[str, int]] = set()
        for url in platform:
            try:
                _, host, port = _split(url)
            except TargetRefused:
                continue
            self._platform.add((host, port))
        self._resolver = resolver or system_resolver
        self._platform_addresses: set[tuple[str, int]] = set()
        self._platform_resolved_at: float | None = None

    async def _refresh_platform_addresses(self) -> None:
        """The addresses the platform's service names resolve to (cached): another name pointing at
        the same address and port is the same service."""
        now = time.monotonic()
        if self._platform_resolved_at is not None and now - self._platform_resolved_at < PLATFORM_CACHE_SECONDS:
            return
        found: set[tuple[str, int]] = set()
        for host, port in self._platform:
            if _ip(host) is not None:
                continue
            try:
                found.update((str(_ip(a) or a), port) for a in await self._resolver(host, port))
            except OSError:
                continue
        self._platform_addresses, self._platform_resolved_at = found, now

    def _allowed(self, host: str, port: int) -> bool:
        return (host, None) in self._allow or (host, port) in self._allow

    def _refusal(self, host: str, port: int, address: IpAddress | None) -> str | None:
        if self._allowed(host, port) or (address is not None and self._allowed(str(address), port)):
            return None
        names = {host} if address is None else {host, str(address)}
        if any((name, port) in self._platform or (name, port) in self._platform_addresses for name in names):
            return f"{host}:{port} is one of the platform's own services"
        if address is None:
            return None
        why = forbidden_range(address)
        return f"{host} resolves to a {why} address ({address})" if why else None

    def check_url(self, url: str) -> tuple[str, str, int]:
        """The checks that need no DNS (scheme, literal addresses, platform names)."""
        scheme, host, port = _split(url)
        refusal = self._refusal(host, port, _ip(host))
        if refusal:
            raise TargetRefused(FORBIDDEN, refusal)
        return scheme, host, port

    async def resolve(self, url: str) -> Target:
        """Resolve the host now and check every address; the first one is where to connect."""
        await self._refresh_platform_addresses()
        scheme, host, port = self.check_url(url)
        literal = _ip(host)
        if literal is not None:
            return Target(url, scheme, host, port, str(literal))
        try:
            addresses = await self._resolver(host, port)
        except OSError as exc:
            raise TargetRefused(UNRESOLVABLE, f"{host} does not resolve: {exc}") from exc
        if not addresses:
            raise TargetRefused(UNRESOLVABLE, f"{host} does not resolve")
        checked: list[str] = []
        for raw in addresses:
            address = _ip(raw)
            if address is None:
                raise TargetRefused(FORBIDDEN, f"{host} resolves to an unusable address {raw!r}")
            refusal = self._refusal(host, port, address)
            if refusal:
                raise TargetRefused(FORBIDDEN, refusal)
            checked.append(str(address))
        return Target(url, scheme, host, port, checked[0])


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen[str(info[4][0])] = None
    return list(seen)
