"""Request bodies of the admin API, validated strictly (unknown fields rejected)."""

from __future__ import annotations

import re
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from trustgate_core.errors import InvalidUUID

SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)


def parse_uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise InvalidUUID(f"'{value}' is not a valid UUID") from exc


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- gateways -------------------------------------------------------------------------------
#: A gateway plan's keys (``entitlements``) and its tiers.
ENTITLEMENT_KEYS = ("tier", "burst_per_min", "quota_per_month")
ENTITLEMENT_TIERS = ("free", "standard", "enterprise")


class GovernanceIn(Body):
    """A gateway's governance switches (docs/governance.md). The receipt key's version is
    raised by ``POST /v1/gateways/{id}/receipt-keys/rotate``, not set here."""

    receipts: StrictBool | None = None
    audit_requests: StrictBool | None = None


class GatewayIn(Body):
    name: str | None = Field(None, max_length=255)
    slug: str | None = None
    domain: str | None = None
    tenant_id: str | None = None
    metadata: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None
    client_tls: dict[str, Any] | None = None
    session_config: dict[str, Any] | None = None
    entitlements: dict[str, Any] | None = None
    governance: GovernanceIn | None = None

    @field_validator("slug")
    @classmethod
    def _slug(cls, v: str | None) -> str | None:
        if v is not None and not SLUG_RE.match(v):
            raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-', at most 63)")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().lower()
        if not HOST_RE.match(v):
            raise ValueError("must be a bare hostname (no scheme, port or wildcard)")
        return v

    @field_validator("client_tls")
    @classmethod
    def _client_tls(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        """No plane presents a client certificate yet: a stored one would be ignored (and
        its private key kept), so only an empty one is accepted."""
        if v:
            raise ValueError("is not supported yet (no plane presents a client certificate)")
        return v

    @field_validator("entitlements")
    @classmethod
    def _entitlements(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        """A plan the proxy enforces: ``burst_per_min`` and ``quota_per_month`` (integers >
        0) and a ``tier`` label. ``max_instances`` is refused: no plane can count a
        gateway's instances, and a limit stored and ignored is worse than none."""
        if v is None:
            return v
        if "max_instances" in v:
            raise ValueError("max_instances is not supported (no plane enforces an instance count)")
        unknown = sorted(set(v) - set(ENTITLEMENT_KEYS))
        if unknown:
            known = ", ".join(ENTITLEMENT_KEYS)
            raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {known})")
        tier = v.get("tier")
        if tier is not None and tier not in ENTITLEMENT_TIERS:
            raise ValueError(f"tier must be one of {', '.join(ENTITLEMENT_TIERS)}")
        for name in ("burst_per_min", "quota_per_month"):
            limit = v.get(name)
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0
            ):
                raise ValueError(f"{name} must be an integer > 0")
        return {key: value for key, value in v.items() if value is not None}

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        return {k: val for k, val in v.items() if k not in ("tenant_id", "team_id")}


class GatewayUpdate(GatewayIn):
    status: Literal["active", "disabled"] | None = None


# -- registries -----------------------------------------------------------------------------
DEFAULT_HEALTH_THRESHOLD = 3
DEFAULT_HEALTH_INTERVAL = 60


class HealthChecks(Body):
    passive: bool = False
    path: str | None = None
    headers: dict[str, str] | None = None
    threshold: int | None = Field(None, gt=0)
    interval: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _defaults(self) -> HealthChecks:
        """Passive checks eject a registry after ``threshold`` failures within ``interval``
        seconds (3 in 60 unless given); active ones GET ``path`` every ``interval``
        seconds (60 unless given), once for the whole cluster."""
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError("path must start with /")
        if self.headers and not self.path:
            raise ValueError("headers are sent by active checks: they need a path")
        if self.passive and self.threshold is None:
            self.threshold = DEFAULT_HEALTH_THRESHOLD
        if (self.passive or self.path) and self.interval is None:
            self.interval = DEFAULT_HEALTH_INTERVAL
        return self


class RegistryIn(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    type: str | None = None
    enabled: bool | None = None
    description: str | None = None
    provider: str | None = None
    provider_options: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    health_checks: HealthChecks | None = None
    mcp_target: dict[str, Any] | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.upper() not in ("LLM", "MCP"):
            raise ValueError("must be LLM or MCP")
        return v.upper()


class RegistryCreate(RegistryIn):
    """A new registry: its name is required (an LLM registry also needs provider and auth,
    an MCP one mcp_target: refused with a 422 naming the field)."""

    name: str = Field(min_length=1, max_length=255)


class TestConnectionIn(Body):
    """A registry to try: an LLM one (``provider``, ``provider_options``, ``auth``) or an
    MCP one (``type: MCP`` or an ``mcp_target``); with ``registry_id``, the stored one, the
    body's fields overriding it (masked values keep the stored secrets)."""

    type: str | None = None
    provider: str | None = None
    provider_options: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    mcp_target: dict[str, Any] | None = None
    registry_id: UUID | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.upper() not in ("LLM", "MCP"):
            raise ValueError("must be LLM or MCP")
        return v.upper()


# -- consumers ------------------------------------------------------------------------------
class ModelPolicyIn(Body):
    allowed: list[str] | None = None
    default: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ModelPolicyIn:
        if self.allowed is not None and not self.allowed:
            raise ValueError("allowed must not be empty when present")
        if self.allowed and self.default and self.default not in self.allowed:
            raise ValueError("default must be one of allowed")
        return self


class RegistryRef(Body):
    id: UUID
    weight: int = Field(1, ge=1, le=100)
    model_policies: ModelPolicyIn | None = None


class ModelPolicyEntry(ModelPolicyIn):
    registry_id: UUID


FallbackTrigger = Literal[
    "http_5xx",
    "http_429",
    "timeout",
    "provider_error",
    "plugin_rejection",
    "context_window_exceeded",
    "content_filter",
]
LbAlgorithm = Literal[
    "round-robin",
    "random",
    "weighted-round-robin",
    "least-connections",
    "ip-hash",
    "latency",
    "semantic",
    "smart-routing",
]


class FallbackBudget(Body):
    max_attempts: int | None = Field(None, ge=1)
    max_total_latency_ms: int | None = Field(None, ge=1)


class Fallback(Body):
    enabled: bool = False
    triggers: list[FallbackTrigger] = []
    budget: FallbackBudget | None = None
    chain: list[UUID] = []

    @model_validator(mode="after")
    def _check(self) -> Fallback:
        if self.enabled and not self.triggers:
            raise ValueError("an enabled fallback needs at least one trigger")
        if self.enabled and not self.chain:
            raise ValueError("an enabled fallback needs a non-empty chain")
        if len(set(self.chain)) != len(self.chain):
            raise ValueError("the chain names a registry twice: a fallback chain cannot loop")
        if "plugin_rejection" in self.triggers:
            raise ValueError(
                "the plugin_rejection trigger is not supported yet (no policy refuses an "
                "answer at pre_response)"
            )
        return self


class LbMember(Body):
    registry_id: UUID
    models: list[str] | None = None
    model: str | None = None
    weight: int = Field(1, ge=1, le=100)


class EmbeddingConfig(Body):
    """Where the ``semantic`` strategy embeds prompts and registry descriptions: a
    registry of the gateway (``registry_id``, or the first enabled one of ``provider``),
    with its own credentials, and the embeddings ``model``."""

    registry_id: UUID | None = None
    provider: str | None = Field(None, min_length=1)
    model: str | None = Field(None, min_length=1)
    timeout_ms: int | None = Field(None, gt=0, le=60_000)

    @model_validator(mode="after")
    def _source(self) -> EmbeddingConfig:
        if self.registry_id is None and self.provider is None:
            raise ValueError("embedding_config needs registry_id or provider")
        return self


class LbConfig(Body):
    enabled: bool = False
    algorithm: LbAlgorithm = "round-robin"
    pool_alias: str | None = None
    members: list[LbMember] = []
    embedding_config: EmbeddingConfig | None = None
    smart_routing: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> LbConfig:
        if self.algorithm == "semantic" and not self.embedding_config:
            raise ValueError("the semantic algorithm needs embedding_config")
        if self.algorithm == "smart-routing":
            raise ValueError(
                "the smart-routing algorithm is not supported (it needs an external "
                "complexity-scoring service no plane has)"
            )
        if self.smart_routing:
            raise ValueError("smart_routing is not supported (see algorithm)")
        if self.enabled and not self.members:
            raise ValueError("an enabled pool needs members")
        return self


class ToolkitEntry(Body):
    registry_id: UUID
    tool: str | None = None
    prompt: str | None = None
    resource: str | None = None
    expose_as: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ToolkitEntry:
        if sum(x is not None for x in (self.tool, self.prompt, self.resource)) != 1:
            raise ValueError("exactly one of tool, prompt or resource is required")
        if self.expose_as and (
            self.resource is not None or "*" in (self.tool or self.prompt or "")
        ):
            raise ValueError("expose_as is not allowed on wildcard or resource entries")
        return self


#: A consumer's ``metadata``: flat labels, each a column of the chargeback CSV.
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 64
MAX_METADATA_VALUE_LENGTH = 256


class ConsumerIn(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    type: Literal["LLM", "MCP", "A2A"] | None = None
    routing_mode: Literal["inline", "role_based"] | None = None
    registries: list[RegistryRef] | None = None
    model_policies: list[ModelPolicyEntry] | None = None
    lb_config: LbConfig | None = None
    fallback: Fallback | None = None
    headers: dict[str, str] | None = None
    active: bool | None = None
    roles: list[UUID] | None = None
    toolkit: list[ToolkitEntry] | None = None
    fail_mode: Literal["open", "closed"] | None = None
    always_prefix: bool | None = Field(
        None,
        description="MCP consumers: name every tool {server}_{tool}, not only colliding ones "
        "(names stay stable when a server is added)",
    )
    metadata: dict[str, str | int | float | bool | None] | None = Field(
        None,
        description="labels for reports, e.g. department and cost_center: the usage API's "
        "chargeback CSV has a column per key (flat: strings, numbers, booleans)",
    )

    @field_validator("metadata")
    @classmethod
    def _metadata(
        cls, v: dict[str, str | int | float | bool | None] | None
    ) -> dict[str, str | int | float | bool | None] | None:
        if v is None:
            return v
        if len(v) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        for key, value in v.items():
            if not 1 <= len(key) <= MAX_METADATA_KEY_LENGTH:
                raise ValueError(f"keys are 1 to {MAX_METADATA_KEY_LENGTH} characters")
            if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_LENGTH:
                raise ValueError(f"{key}: at most {MAX_METADATA_VALUE_LENGTH} characters")
        return v


class ConsumerCreate(ConsumerIn):
    name: str = Field(min_length=1, max_length=255)


class WeightIn(Body):
    weight: int = Field(1, ge=1, le=100)


# -- auths ----------------------------------------------------------------------------------
class AuthIn(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    type: Literal["api_key", "oauth2", "oidc", "mtls"] | None = None
    enabled: bool | None = None
    config: dict[str, Any] | None = None


class AuthCreate(AuthIn):
    name: str = Field(min_length=1, max_length=255)
    type: Literal["api_key", "oauth2", "oidc", "mtls"]


# -- policies -------------------------------------------------------------------------------
class PolicyIn(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=1000)
    slug: str | None = Field(None, min_length=1)
    enabled: bool | None = None
    priority: int | None = Field(None, ge=0, le=2**31 - 1)  # an INTEGER column
    parallel: bool | None = None
    settings: dict[str, Any] | None = None
    stages: list[str] | None = None
    mode: str | None = None


class PolicyCreate(PolicyIn):
    name: str = Field(min_length=1, max_length=255)
    slug: str = Field(min_length=1, description="the plugin id")


# -- roles ----------------------------------------------------------------------------------
class ClaimRule(Body):
    """A claim the token must carry: ``path`` dotted (``realm_access.roles``)."""

    path: str = Field(min_length=1, max_length=255)
    op: Literal["equals", "contains_any", "contains_all"] = "equals"
    values: list[str | int | bool] = Field(min_length=1)


class OidcMapping(Body):
    """Which tokens a role applies to: ``any`` or ``all`` of its claim rules hold."""

    match: Literal["any", "all"] = "any"
    claims: list[ClaimRule] = Field(min_length=1)


class RoleIn(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    model_policies: list[ModelPolicyEntry] | None = None
    mcp_policies: dict[str, Any] | None = None
    oidc_mapping: OidcMapping | None = None


class RoleCreate(RoleIn):
    name: str = Field(min_length=1, max_length=255)
