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
    return broker


def render(fmt: Literal["yaml", "json"] | str = "yaml") -> str:
    from faststream.specification import AsyncAPI

    spec = AsyncAPI(
        build_broker(),
        title="TrustGate bus",
        version=__version__,
        description=DESCRIPTION,
    ).to_specification()
    return spec.to_json() if fmt == "json" else spec.to_yaml()
