"""What to do with one gateway's events, from its telemetry settings (pure).

The settings arrive with their secrets (exporter ``headers``) sealed, as the admin stores
them; a plan holds them opened, since the collector needs the real values."""

from __future__ import annotations

from dataclasses import dataclass

from trustgate_core.crypto import SecretBox
from trustgate_core.errors import ValidationFailed
from trustgate_core.models import Gateway
from trustgate_core.telemetry.settings import (
    OtlpDefaults,
    ResolvedOtlp,
    resolve_otlp,
    validate_telemetry,
)


@dataclass(frozen=True)
class GatewayPlan:
    otlp: tuple[ResolvedOtlp, ...] = ()
    max_body_bytes: int = 0  # Kafka's cut of captured bodies (0: none captured)
    unresolved: int = 0  # otlp exporters with no endpoint here nor in the env
    kafka_topic: str | None = None  # the gateway's own topic (None: TELEMETRY_KAFKA_TOPIC)
    sealed_elsewhere: bool = False  # its secrets do not open with this service's key
    invalid: str | None = None  # why stored settings fail today's rules (no secret in it)


NO_PLAN = GatewayPlan()


def plan_for(gateway: Gateway | None, defaults: OtlpDefaults, box: SecretBox) -> GatewayPlan:
    if gateway is None or not gateway.telemetry:
        return NO_PLAN
    try:
        telemetry = box.open_fields(gateway.telemetry)
    except Exception:  # sealed with another key than this service's (or a rotated one)
        return GatewayPlan(sealed_elsewhere=True)
    try:
        config = validate_telemetry(telemetry)
    except ValidationFailed as exc:  # stored before a stricter rule (e.g. user:password@)
        return GatewayPlan(invalid=exc.message)
    resolved = [resolve_otlp(spec, defaults) for spec in config.otlp]
    return GatewayPlan(
        otlp=tuple(dict.fromkeys(r for r in resolved if r is not None)),
        max_body_bytes=config.max_body_bytes if config.wants_bodies else 0,
        unresolved=sum(1 for r in resolved if r is None),
        kafka_topic=config.kafka_topic,
    )


class GatewayPlans:
    """Plans cached per gateway; a gateway updated on the bus is a new object, so the
    identity check recomputes its plan."""

    def __init__(
        self, gateways: dict[object, Gateway], defaults: OtlpDefaults, box: SecretBox
    ) -> None:
        self._gateways = gateways
        self._defaults = defaults
        self._box = box
        self._cache: dict[object, tuple[Gateway | None, GatewayPlan]] = {}

    def get(self, gateway_id: object) -> GatewayPlan:
        gateway = self._gateways.get(gateway_id)
        hit = self._cache.get(gateway_id)
        if hit is not None and hit[0] is gateway:
            return hit[1]
        plan = plan_for(gateway, self._defaults, self._box)
        if len(self._cache) > 65_536:
            self._cache.clear()
        self._cache[gateway_id] = (gateway, plan)
        return plan
