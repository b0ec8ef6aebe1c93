"""Where an alert may be sent: never to a link-local or cloud-metadata address, and, with
``ALERT_WEBHOOK_ALLOW_PRIVATE=false``, never to a loopback or private one either
(docs/governance-alerts.md, "Where alerts may go").

A channel's URL is checked when a rule is stored (``host_refusal``: its host as written; a
name is not resolved then, its answer may change), and again at every delivery: the
``GuardedBackend`` resolves the host, refuses the connection if **any** of its addresses is
refused, and connects to an address it checked (not to the name again, so a DNS answer that
changes between the check and the connect cannot slip through). TLS still verifies the
certificate against the URL's host name. The alert client uses no proxy from the
environment: the check must see the receiver's own addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Final

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata services' names (their addresses are link-local, or listed below).
METADATA_HOSTS: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
#: Metadata addresses outside the link-local ranges: Alibaba Cloud's, AWS's IPv6 one.
METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_SHARED: Final = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not "private"
#: The start of a refused connection's message (httpx keeps only the message).
BLOCKED: Final = "alert receiver address refused"


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (mapped ``::ffff:a.b.c.d``, NAT64), else
    the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why an alert must not be sent to ``address`` (None: it may)."""
    address = _embedded_ipv4(address)
    if address.is_link_local or address in METADATA_ADDRESSES:
        return "a link-local or cloud metadata address"
    if address.is_unspecified or address.is_multicast:
        return "not a unicast address"
    if not allow_private and (
        address.is_loopback or address.is_private or address.is_reserved or address in _SHARED
    ):
        return "a loopback or private address (ALERT_WEBHOOK_ALLOW_PRIVATE is false)"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as one stands for, legacy IPv4 forms too (``2852039166``,
    ``0xa9.0xfe.0xa9.0xfe``, which resolvers accept); None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def host_refusal(host: str, allow_private: bool) -> str | None:
    """Why a URL naming ``host`` is refused when it is stored (None: it is accepted)."""
    name = host.rstrip(".").lower()
    if name in METADATA_HOSTS:
        return "a cloud metadata host"
    address = literal_address(name)
    if address is not None:
        return refusal(address, allow_private)
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        return "a loopback or private address (ALERT_WEBHOOK_ALLOW_PRIVATE is false)"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses ``refusal`` accepts."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        reason = host_refusal(host, self.allow_private)
        if reason is not None:
            raise httpcore.ConnectError(f"{BLOCKED}: {reason}")
        addresses = await self._resolve(host, port, timeout)
        for address in addresses:
            reason = refusal(address, self.allow_private)
            if reason is not None:
                raise httpcore.ConnectError(f"{BLOCKED}: {reason}")
        error: Exception = httpcore.ConnectError("no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def _resolve(self, host: str, port: int, within: float | None) -> list[IPAddress]:
        try:
            async with asyncio.timeout(within):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host.strip("[]"), port, type=socket.SOCK_STREAM
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout("resolving the receiver's host timed out") from None
        except OSError:
            raise httpcore.ConnectError("the receiver's host did not resolve") from None
        found: dict[IPAddress, None] = {}
        for info in infos:
            found.setdefault(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), None)
        return list(found)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(f"{BLOCKED}: a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a ``GuardedBackend`` (and no proxy)."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=GuardedBackend(allow_private),
        )


def guarded_client(timeout: float, allow_private: bool) -> httpx.AsyncClient:
    """The client alerts are sent with: redirects not followed, no proxy, addresses checked."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def error_kind(exc: httpx.HTTPError) -> str:
    """A failed send's kind for the delivery log (never the URL): ``BlockedAddress`` for a
    receiver the guard refused, else the exception's class."""
    return "BlockedAddress" if str(exc).startswith(BLOCKED) else type(exc).__name__
