"""A data plane's traffic port as its settings describe it: TLS, and whose
``X-Forwarded-Client-Cert`` it believes. One rule for the proxy and the MCP plane; only
their variable names differ (``SERVER_PROXY_TLS_*``, ``SERVER_MCP_TLS_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from trustgate_core.access.mtls import ClientCertificates, IpNetwork, parse_networks
from trustgate_core.serving import ListenerTls


@dataclass(frozen=True, slots=True)
class TrafficTls:
    """``cert``, ``key``, ``client_ca``: PEM files (empty: unset; the key may be in the
    certificate's file); ``xfcc_from``: the trusted peers as CIDRs, comma-separated;
    ``prefix``: the variables' prefix, for the boot's error message."""

    prefix: str
    cert: str = ""
    key: str = ""
    client_ca: str = ""
    xfcc_from: str = ""

    def check(self) -> None:
        """Settings that cannot work stop the boot: a key or client CA without a
        certificate, a malformed CIDR or a /0 among the trusted peers."""
        if (self.key or self.client_ca) and not self.cert:
            raise ValueError(f"{self.prefix}_KEY and _CLIENT_CA need {self.prefix}_CERT")
        self.xfcc_trusted()

    def listener(self) -> ListenerTls | None:
        """The traffic port's TLS (None: plain HTTP)."""
        if not self.cert:
            return None
        return ListenerTls(self.cert, self.key or None, self.client_ca or None)

    def xfcc_trusted(self) -> tuple[IpNetwork, ...]:
        return parse_networks(self.xfcc_from)

    def client_certificates(self) -> ClientCertificates:
        """Which client certificate a request presents: its TLS handshake's on this
        listener, or the header from a trusted peer."""
        return ClientCertificates.for_listener(self.xfcc_trusted(), self.client_ca or None)
