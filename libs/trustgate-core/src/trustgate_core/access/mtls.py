"""Consumers that authenticate by client certificate (``mtls`` auths).

The certificate comes from the proxy's own TLS listener, or from Envoy's
``X-Forwarded-Client-Cert`` header — believed only when the TCP peer is one of the
configured trusted proxies (`client_certificate`). `verify_client_certificate` checks it
against an auth's config (as the admin validates it): it must chain to ``ca_cert`` (each
signature and validity period, through the bundle's intermediates and those the client
sent), and match ``allowed_common_names``, ``allowed_dns_names`` (SAN) and
``allowed_fingerprints`` (SHA-256) when they are given — each list given must match.

Compiled once per auth (the CA bundle parsed once); a certificate's verdict is kept until
the earliest ``not_after`` of its chain (at most `VERDICT_TTL`), so a repeat costs a
fingerprint and a dict lookup.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from time import time
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustgate_core.models import Auth

log = logging.getLogger(__name__)

#: How long a certificate's verdict is kept at most (seconds).
VERDICT_TTL = 300.0
#: Certificates between the leaf and a trust anchor, at most.
MAX_CHAIN = 4
#: Verdicts kept per auth; beyond, the oldest half is dropped.
MAX_VERDICTS = 4096
#: Seconds between two warnings of an ignored X-Forwarded-Client-Cert.
WARN_EVERY = 10.0

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Identity:
    """Who a verified credential says the caller is."""

    auth_id: Any
    subject: str
    claims: dict[str, Any] = field(default_factory=dict)


def verify_client_certificate(
    auth: Auth,
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate] = (),
) -> Identity | None:
    """The identity ``certificate`` proves for ``auth`` (an enabled ``mtls`` auth), or
    None: not chained to its CA (through ``intermediates``, what the client sent besides
    its certificate), outside its validity, or not allowed by its lists."""
    if auth.type != "mtls" or not auth.enabled:
        return None
    return _policy(auth).verify(certificate, intermediates)


def _policy(auth: Auth) -> _Policy:
    entry = _POLICIES.get(auth.id)
    if entry is None or entry[0] is not auth:  # the replica replaces a changed auth
        if len(_POLICIES) >= MAX_VERDICTS:
            _POLICIES.clear()
        entry = _POLICIES[auth.id] = (auth, _Policy.compile(auth))
    return entry[1]


_POLICIES: dict[Any, tuple[Auth, _Policy]] = {}


def _config(auth: Auth) -> dict[str, Any]:
    config = auth.config or {}
    inner = config.get("mtls")
    return inner if isinstance(inner, dict) else config


def _names(values: Any) -> frozenset[str] | None:
    """A config list as a set (None when not given or empty: no constraint)."""
    if not values:
        return None
    return frozenset(str(v).strip().lower() for v in values)


def _fingerprints(values: Any) -> frozenset[str] | None:
    if not values:
        return None
    return frozenset(str(v).replace(":", "").strip().lower() for v in values)


class _Policy:
    __slots__ = ("anchors", "auth_id", "common_names", "dns_names", "fingerprints", "verdicts")

    def __init__(
        self,
        auth_id: Any,
        anchors: Sequence[x509.Certificate],
        common_names: frozenset[str] | None,
        dns_names: frozenset[str] | None,
        fingerprints: frozenset[str] | None,
    ) -> None:
        self.auth_id = auth_id
        self.anchors = tuple(anchors)
        self.common_names = common_names
        self.dns_names = dns_names
        self.fingerprints = fingerprints
        # fingerprint → (identity or None, expires at, final)
        self.verdicts: dict[bytes, tuple[Identity | None, float, bool]] = {}

    @classmethod
    def compile(cls, auth: Auth) -> _Policy:
        cfg = _config(auth)
        try:
            anchors = x509.load_pem_x509_certificates(str(cfg.get("ca_cert", "")).encode())
        except ValueError:
            log.warning("mtls auth %s: ca_cert holds no PEM certificate; it admits none", auth.id)
            anchors = []
        return cls(
            auth.id,
            anchors,
            _names(cfg.get("allowed_common_names")),
            _names(cfg.get("allowed_dns_names")),
            _fingerprints(cfg.get("allowed_fingerprints")),
        )

    def verify(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate] = ()
    ) -> Identity | None:
        digest = leaf.fingerprint(hashes.SHA256())
        now = time()
        cached = self.verdicts.get(digest)
        # a verdict that is not final (no chain found) may change with other intermediates
        if cached is not None and now < cached[1] and (cached[2] or not intermediates):
            return cached[0]
        identity, expires, final = self._decide(leaf, digest, intermediates, now)
        verdicts = self.verdicts
        if len(verdicts) >= MAX_VERDICTS:
            for key in list(verdicts)[: MAX_VERDICTS // 2]:
                del verdicts[key]
        verdicts[digest] = (identity, min(expires, now + VERDICT_TTL), final)
        return identity

    def _decide(
        self,
        leaf: x509.Certificate,
        digest: bytes,
        intermediates: Sequence[x509.Certificate],
        now: float,
    ) -> tuple[Identity | None, float, bool]:
        """The verdict, until when it holds, and whether it is final whatever the
        intermediates. The lists first: they are cheap and need no chain."""
        expires = leaf.not_valid_after_utc.timestamp()
        common_name = _common_name(leaf)
        dns_names = _dns_names(leaf)
        if (
            not _client_usage(leaf)
            or (self.fingerprints is not None and digest.hex() not in self.fingerprints)
            or (
                self.common_names is not None
                and (common_name is None or common_name.lower() not in self.common_names)
            )
            or (
                self.dns_names is not None
                and not any(n.lower() in self.dns_names for n in dns_names)
            )
        ):
            return None, expires, True
        chain = _chain(leaf, self.anchors, intermediates, now)
        if chain is None:
            return None, now + VERDICT_TTL, False
        subject = common_name or (dns_names[0] if dns_names else digest.hex())
        claims: dict[str, Any] = {
            "sub": subject,
            "dns_names": dns_names,
            "fingerprint_sha256": digest.hex(),
            "issuer": leaf.issuer.rfc4514_string(),
            "serial_number": format(leaf.serial_number, "x"),
        }
        expires = min(c.not_valid_after_utc.timestamp() for c in chain)
        return Identity(self.auth_id, subject, claims), expires, True


def _valid_at(cert: x509.Certificate, now: float) -> bool:
    return cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _chain(
    leaf: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    now: float,
) -> list[x509.Certificate] | None:
    """The path from ``leaf`` to one of ``anchors`` (each certificate valid now, each
    signed by the next, every issuer a CA), through ``intermediates``; None if none."""
    if not _valid_at(leaf, now):
        return None
    path = [leaf]
    current = leaf
    for _ in range(MAX_CHAIN):
        for anchor in anchors:
            if _is_ca(anchor) and _valid_at(anchor, now) and _signed_by(current, anchor):
                path.append(anchor)
                return path
        step = next(
            (
                c
                for c in intermediates
                if c not in path and _is_ca(c) and _valid_at(c, now) and _signed_by(current, c)
            ),
            None,
        )
        if step is None:
            return None
        path.append(step)
        current = step
    return None


def _client_usage(cert: x509.Certificate) -> bool:
    """A leaf that names its extended key usages must name client authentication."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


# -- where the certificate comes from -----------------------------------------------------
def parse_xfcc(header: str) -> list[dict[str, str]]:
    """Envoy's ``X-Forwarded-Client-Cert``: comma-separated elements (one per proxy hop,
    the last added by the nearest), each ``Key=value`` pairs separated by ``;``; a value may
    be double-quoted (``\\"`` escapes a quote). Keys are lowercased."""
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    key: list[str] = []
    value: list[str] = []
    in_value = quoted = escaped = False
    for ch in header:
        if quoted:
            if escaped:
                value.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            else:
                value.append(ch)
        elif ch == '"' and in_value:
            quoted = True
        elif ch == "=" and not in_value:
            in_value = True
        elif ch in ";,":
            _pair(element, key, value)
            key, value, in_value = [], [], False
            if ch == ",":
                if element:
                    elements.append(element)
                element = {}
        elif in_value:
            value.append(ch)
        else:
            key.append(ch)
    _pair(element, key, value)
    if element:
        elements.append(element)
    return elements


def _pair(element: dict[str, str], key: list[str], value: list[str]) -> None:
    name = "".join(key).strip().lower()
    if name:
        element[name] = "".join(value).strip()


def xfcc_certificates(header: str) -> Presented | None:
    """The client certificate (and the chain it sent) in the element the nearest proxy
    added (the last one): ``Cert`` and ``Chain``, URL-encoded PEM. None without one, or when
    it does not parse."""
    elements = parse_xfcc(header)
    if not elements:
        return None
    nearest = elements[-1]
    pem = nearest.get("cert")
    if not pem:
        return None
    try:
        leaf = x509.load_pem_x509_certificate(unquote(pem).encode())
        chain = nearest.get("chain")
        rest = x509.load_pem_x509_certificates(unquote(chain).encode()) if chain else []
    except ValueError:
        return None
    return leaf, [c for c in rest if c != leaf]


#: A certificate and the intermediates sent with it.
Presented = tuple[x509.Certificate, list[x509.Certificate]]


class ClientCertificates:
    """Which client certificate a request presents: ``X-Forwarded-Client-Cert`` when the
    TCP peer is one of ``trusted`` (the proxy in front vouches for its own client; a TLS
    certificate of that peer is the proxy's, not the client's), else the one the client
    proved in this listener's TLS handshake — with, as intermediates, the rest of the chain
    it sent and the CA certificates of the listener's client bundle (``listener_cas``: the
    handshake verified the chain against them; an auth's ``ca_cert`` stays its anchor).
    The header from any other peer is ignored (and logged). Parsed certificates are kept
    (bounded), so a repeat costs a lookup."""

    __slots__ = ("_ignored_count", "_parsed", "_warned", "listener_cas", "trusted")

    def __init__(
        self, trusted: Sequence[IpNetwork] = (), listener_cas: Sequence[x509.Certificate] = ()
    ) -> None:
        self.trusted = tuple(trusted)
        self.listener_cas = [c for c in listener_cas if _is_ca(c)]
        self._parsed: dict[str, Presented | None] = {}
        self._warned = -WARN_EVERY
        self._ignored_count = 0

    @classmethod
    def for_listener(
        cls, trusted: Sequence[IpNetwork], client_ca_file: str | None
    ) -> ClientCertificates:
        """With the CA certificates of ``client_ca_file`` (PEM), the listener's bundle."""
        cas: list[x509.Certificate] = []
        if client_ca_file:
            with open(client_ca_file, "rb") as bundle:
                cas = x509.load_pem_x509_certificates(bundle.read())
        return cls(trusted, cas)

    def presented(
        self, tls_chain: Sequence[str] | None, xfcc: str | None, peer: str | None
    ) -> tuple[x509.Certificate, list[x509.Certificate], bool] | None:
        """The certificate, its intermediates, and whether it came in the header."""
        if xfcc is not None:
            if self.trusted and trusted_peer(peer, self.trusted):
                found = self._parse(xfcc, xfcc_certificates)
                return None if found is None else (*found, True)
            self._ignored(peer)
        if tls_chain:
            leaf = self._parse(tls_chain[0], _pem_certificate)
            if leaf is None:
                return None
            sent = [p[0] for pem in tls_chain[1:] if (p := self._parse(pem, _pem_certificate))]
            return leaf[0], [*sent, *self.listener_cas], False
        return None

    def _ignored(self, peer: str | None) -> None:
        """Logged at most every `WARN_EVERY` seconds (a flood must not flood the log)."""
        self._ignored_count += 1
        now = time()
        if now - self._warned >= WARN_EVERY:
            log.warning(
                "mtls: X-Forwarded-Client-Cert from untrusted peer %s ignored (%d since the"
                " last warning)",
                peer,
                self._ignored_count,
            )
            self._warned = now
            self._ignored_count = 0

    def _parse(self, text: str, parse: Callable[[str], Presented | None]) -> Presented | None:
        parsed = self._parsed
        if text in parsed:
            return parsed[text]
        if len(parsed) >= MAX_VERDICTS:
            parsed.clear()
        found = parsed[text] = parse(text)
        return found


def _pem_certificate(pem: str) -> Presented | None:
    try:
        return x509.load_pem_x509_certificate(pem.encode()), []
    except ValueError:
        return None


def trusted_peer(host: str | None, networks: Iterable[IpNetwork]) -> bool:
    """Whether the TCP peer ``host`` is in one of ``networks``."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def parse_networks(value: str) -> tuple[IpNetwork, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); a ``/0`` is refused: it
    would believe every peer."""
    networks = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        network = ipaddress.ip_network(part, strict=False)
        if network.prefixlen == 0:
            raise ValueError(f"{part}: a /0 would trust every peer")
        networks.append(network)
    return tuple(networks)
