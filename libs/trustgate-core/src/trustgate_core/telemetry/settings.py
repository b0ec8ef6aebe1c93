"""A gateway's ``telemetry`` settings: its exporters and body capture, checked structurally.

The gateway entity keeps ``telemetry`` as the JSON the operator sent. This module is the one
reading of it, shared by the admin (which refuses bad settings on create/update with a
message naming the field, e.g. ``telemetry.exporters[0].settings.protocol``), the proxy
(which only asks whether to capture bodies) and the telemetry service (which builds its
exporters from it). No network I/O happens here.

Shape (seed 000, "Telemetry exporters"; the reference's ``type`` and ``class`` accepted)::

    {
      "capture_bodies": false,          # attach request/response bodies to the events
      "max_body_bytes": 4096,           # their truncation cap (Kafka and the bus)
      "exporters": [
        {"name": "otlp", "type": "otlp", "class": "metadata" | "raw", "settings": {...}}
      ]
    }

``name`` or ``type`` says which exporter (``type`` wins when both are given; ``otel`` is an
alias of ``otlp``); names must be unique. ``kafka`` is the default exporter and always on
when the telemetry service has brokers: listing it is allowed; its one setting, ``topic``,
sends the gateway's events to that topic instead of ``TELEMETRY_KAFKA_TOPIC`` (the brokers
are process-wide, ``KAFKA_BROKERS``: a ``brokers`` setting is refused). Bodies are captured
when ``capture_bodies`` is true or any exporter has ``class: raw``.

OTLP settings (any key left out falls back to ``OTEL_EXPORTER_OTLP_*``, see `OtlpDefaults`):
``endpoint`` (host:port or URL), ``protocol`` (``grpc`` | ``http/protobuf``), ``signal``
(``logs``; ``traces`` is reserved and rejected), ``headers`` (string map), ``insecure``
(plaintext; not with ``tls``), ``tls`` (``ca_file``, ``cert_file``, ``key_file``,
``skip_verify``; cert and key together), ``timeout`` (a duration string such as ``10s`` or
``250ms``, or a number of milliseconds; > 0), ``compression`` (``gzip`` | ``none``),
``max_body_bytes`` (default 4096).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from trustgate_core.durations import parse_duration
from trustgate_core.errors import ValidationFailed

OtlpProtocol = Literal["grpc", "http/protobuf"]
Compression = Literal["gzip", "none"]
ExporterClass = Literal["metadata", "raw"]

DEFAULT_KAFKA_TOPIC = "trustgate.requests"  # TELEMETRY_KAFKA_TOPIC
EXPORTER_TYPES = ("kafka", "otlp")
_ALIASES = {"otel": "otlp"}
PROTOCOLS: tuple[OtlpProtocol, ...] = ("grpc", "http/protobuf")
COMPRESSIONS: tuple[Compression, ...] = ("gzip", "none")
DEFAULT_MAX_BODY_BYTES = 4096
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_BODY_BYTES_LIMIT = 2 << 20  # 2 MiB: the reference's cap

_GATEWAY_KEYS = {"exporters", "capture_bodies", "max_body_bytes"}
_EXPORTER_KEYS = {"name", "type", "class", "settings", "enabled"}
_OTLP_KEYS = {
    "endpoint",
    "protocol",
    "signal",
    "headers",
    "insecure",
    "tls",
    "timeout",
    "compression",
    "max_body_bytes",
}
_TLS_KEYS = {"ca_file", "cert_file", "key_file", "skip_verify"}
_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's own rule for topic names


# --- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OtlpTls:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    skip_verify: bool = False


@dataclass(frozen=True)
class OtlpSettings:
    """An exporter's own OTLP settings; ``None`` means "not set here, use the default"."""

    endpoint: str | None = None
    protocol: OtlpProtocol | None = None
    headers: tuple[tuple[str, str], ...] | None = None
    insecure: bool | None = None
    tls: OtlpTls | None = None
    timeout: float | None = None  # seconds
    compression: Compression | None = None
    max_body_bytes: int | None = None


@dataclass(frozen=True)
class ExporterSpec:
    type: str  # "kafka" or "otlp"
    name: str
    cls: ExporterClass = "metadata"
    otlp: OtlpSettings | None = None
    topic: str | None = None  # kafka: the gateway's own topic (None: TELEMETRY_KAFKA_TOPIC)


@dataclass(frozen=True)
class TelemetryConfig:
    exporters: tuple[ExporterSpec, ...] = ()
    capture_bodies: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def otlp(self) -> tuple[ExporterSpec, ...]:
        return tuple(e for e in self.exporters if e.type == "otlp")

    @property
    def kafka_topic(self) -> str | None:
        """The gateway's own Kafka topic, when its ``kafka`` exporter names one."""
        return next((e.topic for e in self.exporters if e.type == "kafka" and e.topic), None)

    @property
    def wants_bodies(self) -> bool:
        return self.capture_bodies or any(e.cls == "raw" for e in self.exporters)

    @property
    def body_limit(self) -> int:
        """How many bytes of each body the proxy must keep (0: capture none)."""
        if not self.wants_bodies:
            return 0
        limits = [self.max_body_bytes]
        limits += [
            e.otlp.max_body_bytes or DEFAULT_MAX_BODY_BYTES
            for e in self.exporters
            if e.cls == "raw" and e.otlp is not None
        ]
        return max(limits)


NO_TELEMETRY = TelemetryConfig()


# --- parsing ----------------------------------------------------------------------------


def _fail(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}")


def _unknown(path: str, raw: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise _fail(f"{path}.{extra[0]}", "unknown field")


def _bool(path: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "must be a boolean")
    return value


def _str(path: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail(path, "must be a string")
    if not empty and not value.strip():
        raise _fail(path, "must not be empty")
    return value


def _body_bytes(path: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "must be an integer")
    if value < 0 or value > MAX_BODY_BYTES_LIMIT:
        raise _fail(path, f"must be between 0 and {MAX_BODY_BYTES_LIMIT}")
    return value


def check_endpoint(path: str, endpoint: str, protocol: OtlpProtocol | None) -> None:
    """An endpoint is ``host:port`` or an http(s) URL; a gRPC endpoint has no path."""
    text = endpoint.strip()
    if not text:
        raise _fail(path, "must not be empty")
    if any(c.isspace() for c in text):
        raise _fail(path, "must not contain spaces")
    if "@" in text.split("://", 1)[-1].split("/", 1)[0]:
        # a password here would travel in clear on the bus and in logs; headers are sealed
        raise _fail(path, "must not carry credentials (user:password@); put them in headers")
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _fail(path, "must be host:port or an http(s) URL")
        if protocol == "grpc" and parts.path not in ("", "/"):
            raise _fail(path, "a grpc endpoint has no path")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise _fail(path, "has an invalid port") from None
        return
    host, sep, port = text.rpartition(":")
    if "/" in text:
        raise _fail(path, "must be host:port or an http(s) URL")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(path, "must be host:port or an http(s) URL")


def _otlp(path: str, raw: object) -> OtlpSettings:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _fail(path, "must be an object")
    _unknown(path, raw, _OTLP_KEYS)
    protocol: OtlpProtocol | None = None
    if raw.get("protocol") is not None:
        value = raw["protocol"]
        if value not in PROTOCOLS:
            raise _fail(f"{path}.protocol", f"must be one of {', '.join(PROTOCOLS)}")
        protocol = value
    signal = raw.get("signal")
    if signal is not None and signal != "logs":
        if signal == "traces":
            raise _fail(f"{path}.signal", "traces is reserved; only logs is supported")
        raise _fail(f"{path}.signal", "must be logs")
    endpoint: str | None = None
    if raw.get("endpoint") is not None:
        endpoint = _str(f"{path}.endpoint", raw["endpoint"]).strip()
        check_endpoint(f"{path}.endpoint", endpoint, protocol)
    headers: tuple[tuple[str, str], ...] | None = None
    if raw.get("headers") is not None:
        value = raw["headers"]
        if not isinstance(value, Mapping):
            raise _fail(f"{path}.headers", "must be an object of strings")
        for key, item in value.items():
            if not isinstance(item, str) or not str(key).strip():
                raise _fail(f"{path}.headers.{key}", "must be a string")
        headers = tuple((str(k).lower(), v) for k, v in value.items())
    insecure = None if raw.get("insecure") is None else _bool(f"{path}.insecure", raw["insecure"])
    tls: OtlpTls | None = None
    if raw.get("tls") is not None:
        tls = _tls(f"{path}.tls", raw["tls"])
        if insecure:
            raise _fail(f"{path}.insecure", "cannot be combined with tls")
    timeout: float | None = None
    if raw.get("timeout") is not None:
        try:
            # a number counts milliseconds, as OTEL_EXPORTER_OTLP_TIMEOUT does; a sign is
            # read so that a negative timeout is refused below as "must be > 0"
            timeout = parse_duration(raw["timeout"], bare="ms", signed=True)
        except ValueError as exc:
            raise _fail(f"{path}.timeout", str(exc)) from None
        if timeout <= 0:
            raise _fail(f"{path}.timeout", "must be > 0")
    compression: Compression | None = None
    if raw.get("compression") is not None:
        value = raw["compression"]
        if value not in COMPRESSIONS:
            raise _fail(f"{path}.compression", f"must be one of {', '.join(COMPRESSIONS)}")
        compression = value
    max_body = None
    if raw.get("max_body_bytes") is not None:
        max_body = _body_bytes(f"{path}.max_body_bytes", raw["max_body_bytes"])
    return OtlpSettings(
        endpoint=endpoint,
        protocol=protocol,
        headers=headers,
        insecure=insecure,
        tls=tls,
        timeout=timeout,
        compression=compression,
        max_body_bytes=max_body,
    )


def _tls(path: str, raw: object) -> OtlpTls:
    if not isinstance(raw, Mapping):
        raise _fail(path, "must be an object")
    _unknown(path, raw, _TLS_KEYS)
    files = {
        key: None if raw.get(key) is None else _str(f"{path}.{key}", raw[key])
        for key in ("ca_file", "cert_file", "key_file")
    }
    if (files["cert_file"] is None) != (files["key_file"] is None):
        missing = "key_file" if files["key_file"] is None else "cert_file"
        raise _fail(f"{path}.{missing}", "cert_file and key_file must be given together")
    skip = raw.get("skip_verify")
    return OtlpTls(
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        skip_verify=False if skip is None else _bool(f"{path}.skip_verify", skip),
    )


def _exporter(path: str, raw: object) -> ExporterSpec:
    if not isinstance(raw, Mapping):
        raise _fail(path, "must be an object")
    _unknown(path, raw, _EXPORTER_KEYS)
    name = raw.get("name")
    kind = raw.get("type")
    if name is not None:
        name = _str(f"{path}.name", name)
    if kind is not None:
        kind = _str(f"{path}.type", kind)
    if name is None and kind is None:
        raise _fail(f"{path}.name", "is required (or type)")
    chosen = str(kind if kind is not None else name).strip().lower()
    chosen = _ALIASES.get(chosen, chosen)
    if chosen not in EXPORTER_TYPES:
        field = "type" if kind is not None else "name"
        raise _fail(f"{path}.{field}", f"unknown exporter (known: {', '.join(EXPORTER_TYPES)})")
    cls = raw.get("class", "metadata")
    if cls not in ("metadata", "raw"):
        raise _fail(f"{path}.class", "must be metadata or raw")
    if raw.get("enabled") is not None:
        _bool(f"{path}.enabled", raw["enabled"])
    otlp = _otlp(f"{path}.settings", raw.get("settings")) if chosen == "otlp" else None
    topic = _kafka(f"{path}.settings", raw.get("settings")) if chosen == "kafka" else None
    return ExporterSpec(type=chosen, name=str(name or chosen), cls=cls, otlp=otlp, topic=topic)


def _kafka(path: str, raw: object) -> str | None:
    """A ``kafka`` exporter's settings: only ``topic``; the brokers are the service's."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _fail(path, "must be an object")
    if raw.get("brokers") is not None:
        raise _fail(
            f"{path}.brokers",
            "the Kafka brokers are process-wide: set KAFKA_BROKERS on the telemetry service",
        )
    _unknown(path, raw, {"topic", "brokers"})
    if raw.get("topic") is None:
        return None
    topic = _str(f"{path}.topic", raw["topic"]).strip()
    if not _KAFKA_TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise _fail(f"{path}.topic", "must be 1-249 characters of A-Z a-z 0-9 . _ -")
    return topic


def validate_telemetry(
    raw: Mapping[str, Any] | None, *, path: str = "telemetry"
) -> TelemetryConfig:
    """Check a gateway's ``telemetry`` and return what it means.

    Raises `ValidationFailed` (422 ``validation_failed``) naming the field, e.g.
    ``telemetry.exporters[0].settings.protocol: must be one of grpc, http/protobuf``.
    Disabled exporters (``"enabled": false``) are checked but left out of the result.
    """
    if raw is None:
        return NO_TELEMETRY
    if not isinstance(raw, Mapping):
        raise _fail(path, "must be an object")
    _unknown(path, raw, _GATEWAY_KEYS)
    exporters_raw = raw.get("exporters")
    if exporters_raw is None:
        exporters_raw = []
    if not isinstance(exporters_raw, list):
        raise _fail(f"{path}.exporters", "must be a list")
    exporters: list[ExporterSpec] = []
    names: set[str] = set()
    for i, item in enumerate(exporters_raw):
        where = f"{path}.exporters[{i}]"
        spec = _exporter(where, item)
        if spec.name in names:
            raise _fail(f"{where}.name", f"duplicate exporter name {spec.name!r}")
        names.add(spec.name)
        if isinstance(item, Mapping) and item.get("enabled") is False:
            continue
        exporters.append(spec)
    capture = raw.get("capture_bodies")
    max_body = raw.get("max_body_bytes")
    return TelemetryConfig(
        exporters=tuple(exporters),
        capture_bodies=False if capture is None else _bool(f"{path}.capture_bodies", capture),
        max_body_bytes=(
            DEFAULT_MAX_BODY_BYTES
            if max_body is None
            else _body_bytes(f"{path}.max_body_bytes", max_body)
        ),
    )


def read_telemetry(raw: Mapping[str, Any] | None) -> TelemetryConfig:
    """`validate_telemetry` for readers of stored settings: invalid ones mean no exporters
    (the admin refuses them, so only settings written before a stricter rule get here)."""
    try:
        return validate_telemetry(raw)
    except ValidationFailed:
        return NO_TELEMETRY


def body_capture_limit(raw: Mapping[str, Any] | None) -> int:
    """Bytes of each body the proxy keeps for a gateway's events (0: none)."""
    if not raw:
        return 0
    return read_telemetry(raw).body_limit


# --- the process defaults (OTEL_EXPORTER_OTLP_*) and what an exporter finally uses ----------


@dataclass(frozen=True)
class ResolvedOtlp:
    """Everything one OTLP pipeline needs; equal settings share one pipeline."""

    endpoint: str
    protocol: OtlpProtocol
    headers: tuple[tuple[str, str], ...]
    insecure: bool
    tls: OtlpTls | None
    timeout: float
    compression: Compression
    max_body_bytes: int
    raw: bool  # class: raw (bodies exported)


def _env_headers(value: str) -> tuple[tuple[str, str], ...]:
    from urllib.parse import unquote

    out: list[tuple[str, str]] = []
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if sep and key.strip():
            out.append((unquote(key.strip()).lower(), unquote(item.strip())))
    return tuple(out)


def _env_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class OtlpDefaults:
    """The process-level fallbacks; per-gateway settings win key by key."""

    endpoint: str | None = None
    protocol: OtlpProtocol | None = None
    headers: tuple[tuple[str, str], ...] = ()
    insecure: bool | None = None
    timeout: float | None = None
    compression: Compression | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OtlpDefaults:
        """Read ``OTEL_EXPORTER_OTLP_{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT,INSECURE,COMPRESSION}``
        (the timeout as integer milliseconds or a duration string). Raises ValidationFailed
        naming the variable when one is malformed."""

        def get(name: str) -> str | None:
            value = env.get(f"OTEL_EXPORTER_OTLP_{name}")
            return value.strip() if value and value.strip() else None

        protocol = get("PROTOCOL")
        if protocol is not None and protocol not in PROTOCOLS:
            raise _fail("OTEL_EXPORTER_OTLP_PROTOCOL", f"must be one of {', '.join(PROTOCOLS)}")
        compression = get("COMPRESSION")
        if compression is not None and compression not in COMPRESSIONS:
            raise _fail(
                "OTEL_EXPORTER_OTLP_COMPRESSION", f"must be one of {', '.join(COMPRESSIONS)}"
            )
        timeout: float | None = None
        if (raw_timeout := get("TIMEOUT")) is not None:
            try:
                timeout = parse_duration(raw_timeout, bare="ms", signed=True)
            except ValueError as exc:
                raise _fail("OTEL_EXPORTER_OTLP_TIMEOUT", str(exc)) from None
            if timeout <= 0:
                raise _fail("OTEL_EXPORTER_OTLP_TIMEOUT", "must be > 0")
        insecure = get("INSECURE")
        return cls(
            endpoint=get("ENDPOINT"),
            protocol=protocol,  # type: ignore[arg-type]
            headers=_env_headers(get("HEADERS") or ""),
            insecure=None if insecure is None else _env_bool(insecure),
            timeout=timeout,
            compression=compression,  # type: ignore[arg-type]
        )


def infer_protocol(endpoint: str) -> OtlpProtocol:
    """Port 4317 or a bare host:port → grpc; 4318 or a URL path → http/protobuf."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.port == 4317 and parts.path in ("", "/"):
            return "grpc"
        return "http/protobuf"
    return "http/protobuf" if endpoint.endswith(":4318") else "grpc"


def resolve_otlp(spec: ExporterSpec, defaults: OtlpDefaults) -> ResolvedOtlp | None:
    """The settings one exporter runs with, or None when no endpoint is known anywhere."""
    own = spec.otlp or OtlpSettings()
    endpoint = own.endpoint or defaults.endpoint
    if not endpoint:
        return None
    protocol = own.protocol or defaults.protocol or infer_protocol(endpoint)
    insecure = own.insecure if own.insecure is not None else defaults.insecure
    if insecure is None:
        # plaintext when nothing says otherwise and the URL is http:// (OTel's own rule)
        insecure = own.tls is None and endpoint.startswith("http://")
    headers = dict(defaults.headers)
    headers.update(own.headers or ())
    return ResolvedOtlp(
        endpoint=endpoint,
        protocol=protocol,
        headers=tuple(sorted(headers.items())),
        insecure=bool(insecure) and own.tls is None,
        tls=own.tls,
        timeout=own.timeout or defaults.timeout or DEFAULT_TIMEOUT_SECONDS,
        compression=own.compression or defaults.compression or "gzip",
        max_body_bytes=(
            own.max_body_bytes if own.max_body_bytes is not None else DEFAULT_MAX_BODY_BYTES
        ),
        raw=spec.cls == "raw",
    )
