"""mtls auths: a client certificate must chain to the auth's CA and match its lists; the
certificates are made here with ``cryptography``."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import quote
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from trustgate_core.access.mtls import (
    ClientCertificates,
    parse_networks,
    parse_xfcc,
    trusted_peer,
    verify_client_certificate,
    xfcc_certificates,
)
from trustgate_core.models import Auth
from trustgate_testkit.pki import NOW, Issued, issue


def mtls_auth(ca_pem: str, **lists: list[str]) -> Auth:
    return Auth(
        id=uuid4(),
        gateway_id=uuid4(),
        name="certs",
        type="mtls",
        created_at=NOW,
        updated_at=NOW,
        config={"mtls": {"ca_cert": ca_pem, **lists}},
    )


@pytest.fixture(scope="module")
def root() -> Issued:
    return issue("Root CA", ca=True)


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return issue("Issuing CA", root, ca=True)


def test_a_certificate_issued_through_an_intermediate_of_the_bundle_is_accepted(
    root: Issued, intermediate: Issued
) -> None:
    client = issue("billing-service", intermediate, dns=("billing.internal",))
    auth = mtls_auth(root.pem + intermediate.pem)
    identity = verify_client_certificate(auth, client.cert)
    assert identity is not None
    assert identity.subject == "billing-service"
    assert identity.auth_id == auth.id
    assert identity.claims["dns_names"] == ["billing.internal"]


def test_an_intermediate_the_client_sends_completes_the_chain_to_the_root(
    root: Issued, intermediate: Issued
) -> None:
    client = issue("svc", intermediate)
    auth = mtls_auth(root.pem)
    assert verify_client_certificate(auth, client.cert) is None
    assert verify_client_certificate(auth, client.cert, [intermediate.cert]) is not None


def test_a_certificate_of_another_ca_is_refused(root: Issued) -> None:
    other_root = issue("Root CA", ca=True)  # same name, another key
    client = issue("svc", other_root)
    assert verify_client_certificate(mtls_auth(root.pem), client.cert) is None


def test_an_intermediate_that_is_not_a_ca_cannot_issue(root: Issued) -> None:
    leaf_as_issuer = issue("not-a-ca", root)
    client = issue("svc", leaf_as_issuer)
    auth = mtls_auth(root.pem)
    assert verify_client_certificate(auth, client.cert, [leaf_as_issuer.cert]) is None


def test_expired_and_not_yet_valid_certificates_are_refused(root: Issued) -> None:
    auth = mtls_auth(root.pem)
    expired = issue(
        "svc", root, not_before=NOW - timedelta(days=10), not_after=NOW - timedelta(seconds=1)
    )
    future = issue("svc", root, not_before=NOW + timedelta(hours=1))
    assert verify_client_certificate(auth, expired.cert) is None
    assert verify_client_certificate(auth, future.cert) is None


def test_a_certificate_for_servers_only_is_refused(root: Issued) -> None:
    server = issue("svc", root, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    assert verify_client_certificate(mtls_auth(root.pem), server.cert) is None


def test_the_allowed_lists_each_must_match(root: Issued) -> None:
    client = issue("billing", root, dns=("billing.internal", "b.internal"))
    fingerprint = client.cert.fingerprint(hashes.SHA256()).hex()
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    check = verify_client_certificate
    assert check(mtls_auth(root.pem, allowed_common_names=["billing"]), client.cert)
    assert not check(mtls_auth(root.pem, allowed_common_names=["payroll"]), client.cert)
    assert check(mtls_auth(root.pem, allowed_dns_names=["b.internal"]), client.cert)
    assert not check(mtls_auth(root.pem, allowed_dns_names=["x.internal"]), client.cert)
    assert check(mtls_auth(root.pem, allowed_fingerprints=[colons]), client.cert)
    assert not check(mtls_auth(root.pem, allowed_fingerprints=["00" * 32]), client.cert)
    both = mtls_auth(root.pem, allowed_common_names=["billing"], allowed_dns_names=["x.internal"])
    assert not check(both, client.cert)


def test_a_disabled_auth_or_another_type_admits_no_certificate(root: Issued) -> None:
    client = issue("svc", root)
    disabled = mtls_auth(root.pem).model_copy(update={"enabled": False})
    assert verify_client_certificate(disabled, client.cert) is None
    api_key = mtls_auth(root.pem).model_copy(update={"type": "api_key"})
    assert verify_client_certificate(api_key, client.cert) is None


def test_a_ca_cert_that_is_not_pem_admits_nothing(root: Issued) -> None:
    client = issue("svc", root)
    assert verify_client_certificate(mtls_auth("not a certificate"), client.cert) is None


def test_a_changed_auth_is_compiled_again(root: Issued) -> None:
    client = issue("svc", root)
    auth = mtls_auth(root.pem, allowed_common_names=["svc"])
    assert verify_client_certificate(auth, client.cert) is not None
    narrowed = auth.model_copy(
        update={"config": {"mtls": {"ca_cert": root.pem, "allowed_common_names": ["other"]}}}
    )
    assert verify_client_certificate(narrowed, client.cert) is None


def test_xfcc_elements_keys_and_quoted_values_are_parsed() -> None:
    header = (
        'By=spiffe://a;Hash=ab12;Subject="CN=x,O=a \\"b\\"";URI=,'
        "By=spiffe://b;Hash=cd34;DNS=one.internal"
    )
    assert parse_xfcc(header) == [
        {"by": "spiffe://a", "hash": "ab12", "subject": 'CN=x,O=a "b"', "uri": ""},
        {"by": "spiffe://b", "hash": "cd34", "dns": "one.internal"},
    ]


def test_xfcc_gives_the_certificate_the_nearest_proxy_added(root: Issued) -> None:
    first = issue("first", root)
    nearest = issue("nearest", root)
    header = (
        f'By=a;Cert="{quote(first.pem)}",'
        f'By=b;Hash=x;Cert="{quote(nearest.pem)}";Chain="{quote(nearest.pem + root.pem)}"'
    )
    found = xfcc_certificates(header)
    assert found is not None
    leaf, chain = found
    assert leaf == nearest.cert
    assert chain == [root.cert]
    assert xfcc_certificates("By=a;Hash=b") is None
    assert xfcc_certificates('Cert="not%20pem"') is None
    assert xfcc_certificates("") is None


def test_trusted_peers_are_cidrs_and_never_everyone() -> None:
    networks = parse_networks("10.0.0.0/8, 192.168.1.7,::1")
    assert trusted_peer("10.2.3.4", networks)
    assert trusted_peer("192.168.1.7", networks)
    assert trusted_peer("::1", networks)
    assert not trusted_peer("192.168.1.8", networks)
    assert not trusted_peer(None, networks)
    assert not trusted_peer("unix-socket", networks)
    assert parse_networks("") == ()
    with pytest.raises(ValueError):
        parse_networks("0.0.0.0/0")


def test_a_flood_of_spoofed_headers_is_ignored_with_one_warning(
    root: Issued, caplog: pytest.LogCaptureFixture
) -> None:
    certificates = ClientCertificates(parse_networks("10.0.0.0/8"))
    header = f'Cert="{quote(issue("svc", root).pem)}"'
    with caplog.at_level(logging.WARNING, logger="trustgate_core.access.mtls"):
        for _ in range(100):
            assert certificates.presented(None, header, "203.0.113.9") is None
    warnings = [r for r in caplog.records if "untrusted peer 203.0.113.9" in r.getMessage()]
    assert len(warnings) == 1


def test_the_listeners_cas_are_intermediates_toward_the_auths_root(
    root: Issued, intermediate: Issued
) -> None:
    client = issue("svc", intermediate)
    certificates = ClientCertificates((), [intermediate.cert, client.cert])  # only CAs kept
    presented = certificates.presented([client.pem], None, "192.0.2.1")
    assert presented is not None
    leaf, chain, from_header = presented
    assert (leaf, chain, from_header) == (client.cert, [intermediate.cert], False)
    assert verify_client_certificate(mtls_auth(root.pem), leaf, chain) is not None
