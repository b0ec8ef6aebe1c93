"""The AsyncAPI document of the bus, generated from the contracts with FastStream.

The broker built here is only a description (it never connects): one publisher per config
entity kind on ``TRUSTGATE_CONFIG`` and the request events on ``TRUSTGATE_REQUESTS``, each
with its payload model, so the document always matches the code. Export it with
``trustgate asyncapi --out deploy/asyncapi.yaml``; no service serves it over HTTP.
"""

from __future__ import annotations

from typing import Any, Literal

from trustgate_core import __version__
from trustgate_core.events.config import EVENT_TYPES
from trustgate_core.events.subjects import CONFIG_PREFIX, CONFIG_STREAM, REQUESTS_PREFIX

DESCRIPTION = (
    "TrustGate's bus. TRUSTGATE_CONFIG holds the latest state of every configuration entity "
    "(max one message per subject; op=delete is a tombstone; apply an event only if its "
    "revision is newer than the one you hold). TRUSTGATE_REQUESTS carries one event per "
    "proxied request. Provider credentials travel sealed (AES-256-GCM); consumer API keys "
    "only as SHA-256 hashes."
)


def build_broker() -> Any:
    from faststream.nats import JStream, NatsBroker

    broker = NatsBroker("nats://localhost:4222", description="TrustGate bus")
    config_stream = JStream(CONFIG_STREAM.name, declare=False)
    for kind, event_type in EVENT_TYPES.items():
        pub = broker.publisher(
            f"{CONFIG_PREFIX}.{kind.value}.{{gateway_id}}.{{entity_id}}",
            stream=config_stream,
            title=f"config.{kind.value}",
            description=f"State of a {kind.value}: published by admin (outbox), "
            "consumed by every proxy and mcp replica.",
            schema=event_type,
        )
        del pub
    try:
        from trustgate_core.events.requests import RequestEvent
    except ImportError:  # pragma: no cover - request events arrive with the proxy
        return broker
    broker.publisher(
        f"{REQUESTS_PREFIX}.{{gateway_id}}",
        stream=JStream("TRUSTGATE_REQUESTS", declare=False),
        title="requests",
        description="One event per proxied request: published by the proxy, consumed by "
        "telemetry and policy-cache (durable consumers).",
        schema=RequestEvent,
    )
    from trustgate_core.events.audit import AuditEvent
    from trustgate_core.events.subjects import AUDIT_PREFIX, AUDIT_STREAM

    broker.publisher(
        f"{AUDIT_PREFIX}.{{gateway_id}}",
        stream=JStream(AUDIT_STREAM.name, declare=False),
        title="audit",
        description="One event per admin change (who, what, when): published by admin "
        "through its outbox.",
        schema=AuditEvent,
    )
    from trustgate_core.events.audit import AuditHeadEvent
    from trustgate_core.events.subjects import AUDIT_HEAD_SUBJECT, audit_head_stream

    broker.publisher(
        AUDIT_HEAD_SUBJECT,
        stream=JStream(audit_head_stream().name, declare=False),
        title="audit_head",
        description="The audit chain's head (seq, hash) whenever it moved, every "
        "AUDIT_HEAD_INTERVAL: published by each admin replica with Nats-Msg-Id = the seq "
        "(stored once). Keep these outside TrustGate and pass them to `trustgate admin "
        "audit verify --anchor SEQ:HASH` (docs/governance-audit.md).",
        schema=AuditHeadEvent,
    )
    return broker


KAFKA_DESCRIPTION = (
    "Telemetry's export: one ExportedEvent (a sanitized, versioned business event) per "
    "proxied request on the Kafka topic TELEMETRY_KAFKA_TOPIC (default trustgate.requests), "
    "keyed by gateway id so a gateway's events stay ordered; at-least-once (readers dedupe "
    "on trace_id). The same JSON Schema ships as trustgate_core/telemetry/"
    "exported_event.schema.json."
)


def _with_kafka_export(doc: dict[str, Any]) -> dict[str, Any]:
    """Add telemetry's Kafka topic (not a NATS subject, so FastStream's NATS broker cannot
    describe it): a kafka server, its channel, the send operation and the payload schema."""
    from trustgate_core.telemetry.event import ExportedEvent
    from trustgate_core.telemetry.settings import DEFAULT_KAFKA_TOPIC

    schema = ExportedEvent.model_json_schema(
        mode="serialization", ref_template="#/components/schemas/{model}"
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas["ExportedEvent"] = schema
    doc["components"].setdefault("messages", {})["telemetry.kafka:Message"] = {
        "title": "telemetry.kafka:Message",
        "correlationId": {"location": "$message.payload#/trace_id"},
        "payload": {"$ref": "#/components/schemas/ExportedEvent"},
    }
    doc.setdefault("servers", {})["kafka"] = {
        "host": "localhost:9092",
        "protocol": "kafka",
        "description": "The telemetry export (KAFKA_BROKERS)",
    }
    doc.setdefault("channels", {})["telemetry.kafka"] = {
        "address": DEFAULT_KAFKA_TOPIC,
        "description": KAFKA_DESCRIPTION,
        "servers": [{"$ref": "#/servers/kafka"}],
        "messages": {"Message": {"$ref": "#/components/messages/telemetry.kafka:Message"}},
        "bindings": {"kafka": {"topic": DEFAULT_KAFKA_TOPIC, "bindingVersion": "0.5.0"}},
    }
    doc.setdefault("operations", {})["telemetry.kafka"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/telemetry.kafka"},
        "messages": [{"$ref": "#/channels/telemetry.kafka/messages/Message"}],
    }
    return doc


def render(fmt: Literal["yaml", "json"] | str = "yaml") -> str:
    import json

    import yaml
    from faststream.specification import AsyncAPI

    spec = AsyncAPI(
        build_broker(),
        title="TrustGate bus",
        version=__version__,
        description=DESCRIPTION,
    ).to_specification()
    doc = _with_kafka_export(spec.to_jsonable())
    if fmt == "json":
        return json.dumps(doc, indent=2)
    return str(yaml.dump(doc, sort_keys=False))
