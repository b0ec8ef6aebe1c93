"""The compiled view of the config replica: what survives a config change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from trustgate_core.crypto import SecretBox
from trustgate_core.events import GatewayEvent, RegistryEvent
from trustgate_core.ids import uuid7
from trustgate_core.models import Gateway, Registry
from trustgate_core.replica import ReplicaState
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_proxy.adapters.providers import BUILDERS
from trustgate_proxy.services.config_view import ConfigView

NOW = datetime.now(UTC)
BOX = SecretBox(DEV_SECRET_KEY)


def _envelope(gateway_id: Any, entity_id: Any, revision: int) -> dict[str, Any]:
    return {
        "op": "upsert",
        "revision": revision,
        "gateway_id": gateway_id,
        "entity_id": entity_id,
        "occurred_at": NOW,
    }


def _gateway() -> Gateway:
    gw = uuid7()
    return Gateway(id=gw, gateway_id=gw, created_at=NOW, updated_at=NOW, slug=f"gw-{gw.hex[-8:]}")


def _registry(gateway: Gateway, name: str, **changes: Any) -> Registry:
    fields: dict[str, Any] = {
        "id": uuid7(),
        "gateway_id": gateway.id,
        "created_at": NOW,
        "updated_at": NOW,
        "name": name,
        "provider": "openai_compatible",
        "provider_options": {"base_url": "http://127.0.0.1:9/v1"},
        "auth": BOX.seal_fields({"type": "api_key", "api_key": {"api_key": "sk-test-0123456"}}),
    }
    return Registry(**{**fields, **changes})


def _apply(state: ReplicaState, view: ConfigView, event: Any) -> None:
    assert state.apply(event)
    view.invalidate(event)


def test_a_registrys_target_survives_changes_to_other_entities_and_is_rebuilt_when_it_changes() -> (
    None
):
    state = ReplicaState()
    view = ConfigView(state, BOX, BUILDERS)
    gateway = _gateway()
    registry = _registry(gateway, "primary")
    _apply(state, view, GatewayEvent(**_envelope(gateway.id, gateway.id, 1), entity=gateway))
    _apply(state, view, RegistryEvent(**_envelope(gateway.id, registry.id, 2), entity=registry))
    first = view.target(state.registries[registry.id])

    # another gateway and another registry change: the target (and the tokens it may
    # hold) is kept
    other = _gateway()
    _apply(state, view, GatewayEvent(**_envelope(other.id, other.id, 3), entity=other))
    second = _registry(other, "elsewhere")
    _apply(state, view, RegistryEvent(**_envelope(other.id, second.id, 4), entity=second))
    assert view.target(state.registries[registry.id]) is first

    # the registry itself changes: a new target from the new settings
    changed = _registry(
        gateway, "primary", id=registry.id, provider_options={"base_url": "http://127.0.0.1:8/v1"}
    )
    _apply(state, view, RegistryEvent(**_envelope(gateway.id, registry.id, 5), entity=changed))
    rebuilt = view.target(state.registries[registry.id])
    assert rebuilt is not first
    assert rebuilt.base_url == "http://127.0.0.1:8/v1"


def test_a_deleted_registrys_target_is_dropped() -> None:
    state = ReplicaState()
    view = ConfigView(state, BOX, BUILDERS)
    gateway = _gateway()
    registry = _registry(gateway, "primary")
    _apply(state, view, RegistryEvent(**_envelope(gateway.id, registry.id, 1), entity=registry))
    view.target(state.registries[registry.id])
    gone = RegistryEvent(**{**_envelope(gateway.id, registry.id, 2), "op": "delete"})
    _apply(state, view, gone)
    assert registry.id not in view._targets
