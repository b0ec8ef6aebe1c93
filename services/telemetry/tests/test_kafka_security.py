"""Kafka's TLS and SASL settings (an external, production Kafka) reach the producer, and a
combination that would be ignored or cannot connect is refused at start with a message
that names the variables and never repeats a password.

No SASL or TLS Kafka broker runs here (the shared test broker is plaintext), so these
tests stop at the producer aiokafka builds from the settings: its client's security
protocol, SASL mechanism and credentials, and the TLS context (the CA it trusts, the client
certificate it presents, hostnames checked).
"""

from __future__ import annotations

import datetime
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from trustgate_telemetry.adapters.kafka import KafkaSink
from trustgate_telemetry.bootstrap import build_sink
from trustgate_telemetry.settings import TelemetrySettings

PASSWORD = "s3cr3t-sasl-pa55word"
KEY_PASSWORD = "k3y-pa55phrase"
CA_NAME = "trustgate-test-kafka-ca"


@pytest.fixture(autouse=True)
def _no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each test passes (the process's environment could carry KAFKA_*)."""
    for name in TelemetrySettings.model_fields:
        if name.startswith("kafka_"):
            alias = TelemetrySettings.model_fields[name].alias
            assert alias
            monkeypatch.delenv(alias, raising=False)
            monkeypatch.delenv(alias.lower(), raising=False)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, and a client certificate it signed with its key encrypted by KEY_PASSWORD."""
    out = tmp_path_factory.mktemp("kafka-pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(CA_NAME))
        .issuer_name(_name(CA_NAME))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        x509.CertificateBuilder()
        .subject_name(_name("trustgate-telemetry"))
        .issuer_name(ca.subject)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": out / "ca.pem", "cert": out / "client.pem", "key": out / "client.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(client.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    files["junk"] = out / "junk.pem"
    files["junk"].write_text("not a certificate\n")
    return files


def settings(**env: Any) -> TelemetrySettings:
    return TelemetrySettings(KAFKA_BROKERS="kafka-0.example.internal:9093", **env)


def test_plaintext_by_default_adds_nothing_to_the_producer() -> None:
    plain = settings()
    assert plain.kafka_client_options() == {"security_protocol": "PLAINTEXT"}
    options = build_sink(plain).producer_options()  # type: ignore[attr-defined]
    assert not {k for k in options if k.startswith(("sasl", "ssl"))}


async def test_sasl_ssl_with_a_client_certificate_reaches_the_producer(
    pki: dict[str, Path],
) -> None:
    configured = settings(
        KAFKA_SECURITY_PROTOCOL="sasl_ssl",  # any case
        KAFKA_SASL_MECHANISM="scram-sha-512",
        KAFKA_SASL_USERNAME="trustgate",
        KAFKA_SASL_PASSWORD=PASSWORD,
        KAFKA_SSL_CAFILE=str(pki["ca"]),
        KAFKA_SSL_CERTFILE=str(pki["cert"]),
        KAFKA_SSL_KEYFILE=str(pki["key"]),
        KAFKA_SSL_KEY_PASSWORD=KEY_PASSWORD,
    )
    sink = build_sink(configured)
    assert isinstance(sink, KafkaSink)
    producer = sink._make()
    assert isinstance(producer, AIOKafkaProducer)
    client = producer.client
    assert client._security_protocol == "SASL_SSL"
    assert client._sasl_mechanism == "SCRAM-SHA-512"
    assert client._sasl_plain_username == "trustgate"
    assert client._sasl_plain_password == PASSWORD
    context = client._ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # trusts the CA named (and, through it, the brokers' certificates it signed)
    (trusted,) = context.get_ca_certs()
    assert dict(entry[0] for entry in trusted["subject"])["commonName"] == CA_NAME
    # the delivery guarantees are the sink's, whatever the security
    assert sink.producer_options()["acks"] == "all"
    await producer.stop()


async def test_sasl_plaintext_sends_credentials_without_tls() -> None:
    options = settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="trustgate",
        KAFKA_SASL_PASSWORD=PASSWORD,
    ).kafka_client_options()
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "trustgate",
        "sasl_plain_password": PASSWORD,
    }
    producer = AIOKafkaProducer(bootstrap_servers="localhost:1", **options)
    assert producer.client._ssl_context is None
    await producer.stop()


def test_ssl_without_a_ca_file_trusts_the_systems_cas() -> None:
    options = settings(KAFKA_SECURITY_PROTOCOL="SSL").kafka_client_options()
    assert set(options) == {"security_protocol", "ssl_context"}
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


REFUSED: list[tuple[dict[str, str], str]] = [
    (
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"},
        "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD",
    ),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u",
         "KAFKA_SASL_PASSWORD": PASSWORD},
        "needs KAFKA_SASL_MECHANISM",
    ),
    (
        {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD},
        "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT"
        " does no SASL",
    ),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "PLAIN",
         "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD},
        "KAFKA_SECURITY_PROTOCOL=SSL does no SASL: use SASL_SSL",
    ),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
         "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD,
         "KAFKA_SSL_CAFILE": "{ca}"},
        "KAFKA_SSL_CAFILE set but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does no TLS",
    ),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "{key}"},
        "KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE",
    ),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
        "KAFKA_SSL_CAFILE: /nonexistent/ca.pem is not a readable file",
    ),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "{junk}"},
        "could not be loaded",
    ),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "{cert}",
         "KAFKA_SSL_KEYFILE": "{key}", "KAFKA_SSL_KEY_PASSWORD": PASSWORD},
        "could not be loaded",
    ),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI",
         "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD},
        "KAFKA_SASL_MECHANISM",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("env", "message"), REFUSED)
def test_a_combination_that_cannot_work_is_refused_at_start(
    pki: dict[str, Path], env: dict[str, str], message: str
) -> None:
    env = {k: v.format(**{n: str(p) for n, p in pki.items()}) for k, v in env.items()}
    with pytest.raises(ValidationError) as refused:
        settings(**env)
    text = str(refused.value)
    assert message in text
    assert PASSWORD not in text and KEY_PASSWORD not in text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_the_passwords_are_never_logged_or_shown(
    pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    configured = TelemetrySettings(
        KAFKA_BROKERS=f"127.0.0.1:{_closed_port()}",
        TELEMETRY_KAFKA_TIMEOUT=2,
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME="trustgate",
        KAFKA_SASL_PASSWORD=PASSWORD,
        KAFKA_SSL_CAFILE=str(pki["ca"]),
        KAFKA_SSL_CERTFILE=str(pki["cert"]),
        KAFKA_SSL_KEYFILE=str(pki["key"]),
        KAFKA_SSL_KEY_PASSWORD=KEY_PASSWORD,
    )
    assert PASSWORD not in repr(configured) and KEY_PASSWORD not in repr(configured)
    assert PASSWORD not in str(configured.model_dump())
    sink = build_sink(configured)
    with pytest.raises(Exception) as failed:  # no broker there: the caller retries
        await sink.start()
    assert PASSWORD not in str(failed.value)
    await sink.stop()
    assert caplog.records  # aiokafka and the SSL helper did log
    assert PASSWORD not in caplog.text and KEY_PASSWORD not in caplog.text
