"""Usage receipts on a data plane's request events: each event of a gateway with
``governance.receipts`` on carries its usage record signed with the gateway's Ed25519 key
(docs/governance-receipts.md). The proxy and the MCP plane both use it.

Signing happens where the event is built: in the request-event publisher's background
task, after the answer was sent, so the request path never waits for it. The keys are
derived from the secrets key when a gateway's config arrives (never per event, never
stored, never sent). While no gateway has receipts on, a plane's publisher does not call
the signer at all; once one does, another gateway's event costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from trustgate_core.events.config import AnyConfigEvent
from trustgate_core.models.base import EntityKind
from trustgate_core.receipts.keys import ReceiptKey
from trustgate_core.receipts.record import record_of_request
from trustgate_core.receipts.signing import sign_record
from trustgate_core.replica import ReplicaState


class _OfGateway(Protocol):
    @property
    def gateway_id(self) -> UUID | None: ...


C = TypeVar("C", bound=_OfGateway)


class ReceiptSigner(Generic[C]):
    """Adds a receipt to the request events of the gateways that ask for one.

    ``payload`` wraps the event builder the publisher calls; ``changed`` is a config
    listener that keeps each gateway's key current (derived again when its
    ``receipt_key_version`` is raised by a rotation, dropped when receipts are turned off
    or the gateway is deleted)."""

    def __init__(
        self,
        state: ReplicaState,
        material: str | bytes,
        build: Callable[[C], dict[str, Any]],
    ) -> None:
        self._state = state
        self._material = material
        self._build = build
        self._keys: dict[UUID | None, ReceiptKey] = {}  # a call may name no gateway

    def payload(self, call: C) -> dict[str, Any]:
        payload = self._build(call)
        key = self._keys.get(call.gateway_id)
        if key is not None:
            payload["receipt"] = sign_record(key, record_of_request(payload))
        return payload

    def changed(self, event: AnyConfigEvent) -> None:
        if event.kind is EntityKind.gateway:
            self.refresh(event.entity_id)

    def refresh(self, gateway_id: UUID) -> None:
        """The gateway's key as its current config says."""
        gateway = self._state.gateways.get(gateway_id)
        if gateway is None or not gateway.governance.receipts:
            self._keys.pop(gateway_id, None)
            return
        version = gateway.governance.receipt_key_version
        held = self._keys.get(gateway_id)
        if held is None or held.version != version:
            self._keys[gateway_id] = ReceiptKey.derive(self._material, gateway_id, version)

    @property
    def active(self) -> bool:
        """Whether any gateway has receipts on."""
        return bool(self._keys)

    def key(self, gateway_id: UUID) -> ReceiptKey | None:
        """The key the gateway's receipts are signed with now (``None``: receipts off)."""
        return self._keys.get(gateway_id)
