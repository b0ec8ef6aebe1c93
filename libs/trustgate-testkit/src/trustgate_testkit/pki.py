"""Certificates made by a test (EC P-256): a root, intermediates, client and server
certificates, for mTLS tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.now(UTC)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def files(self, where: Path, name: str) -> tuple[str, str]:
        """The certificate and its key written under ``where``; their paths."""
        cert, key = where / f"{name}.pem", where / f"{name}.key"
        cert.write_text(self.pem)
        key.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert), str(key)


def issue(
    name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    server: bool = False,
    dns: tuple[str, ...] = (),
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=30),
    usage: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.CLIENT_AUTH,
) -> Issued:
    """A certificate for CN ``name``, signed by ``issuer`` (self-signed without one): a
    CA, a server certificate for 127.0.0.1 (``server``), or a client certificate with
    ``usage`` (``None``: no extended key usage) and ``dns`` names."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    if server:
        names.append(x509.IPAddress(IPv4Address("127.0.0.1")))
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if not ca and usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


@dataclass
class Pki:
    """A root CA and an issuing CA under it, with files in ``where``: what mTLS tests
    trust and present. ``Pki.create(where)`` makes one."""

    root: Issued
    issuing: Issued  # an intermediate: client certificates chain through it
    where: Path

    @classmethod
    def create(cls, where: Path) -> Pki:
        root = issue("Test Root CA", ca=True)
        return cls(root, issue("Test Issuing CA", root, ca=True), where)

    def client(self, name: str, **kw: Any) -> Issued:
        return issue(name, self.issuing, **kw)

    def context(self, client: Issued | None, name: str = "client") -> ssl.SSLContext:
        """What the client trusts (our root) and proves (``client`` and its intermediate)."""
        context = ssl.create_default_context(cadata=self.root.pem)
        if client is not None:
            chain = self.where / f"{name}-chain.pem"
            _, key = client.files(self.where, name)
            chain.write_text(client.pem + self.issuing.pem)
            context.load_cert_chain(str(chain), key)
        return context

    def xfcc(self, client: Issued, by: str = "spiffe://envoy") -> str:
        """Envoy's ``X-Forwarded-Client-Cert`` for ``client`` (the chain it sent: its leaf
        and the intermediate)."""
        return (
            f'By={by};Hash=00;Cert="{quote(client.pem)}";'
            f'Chain="{quote(client.pem + self.issuing.pem)}"'
        )
