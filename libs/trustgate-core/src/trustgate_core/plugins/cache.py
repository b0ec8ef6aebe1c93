"""``semantic_cache``: serves stored responses for similar (or identical) prompts."""

from __future__ import annotations

import math
from typing import Final, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import Field, field_validator, model_validator

from trustgate_core.durations import parse_duration
from trustgate_core.plugins.base import (
    Duration,
    NonBlankStr,
    PluginSettings,
    PluginSpec,
    PositiveInt,
    require_duration,
)

DEFAULT_TTL_SECONDS = 24 * 3600


#: providers whose embeddings endpoint the proxy can call with a key alone (OpenAI's
#: embeddings wire format at a public URL); ``openai_compatible`` takes a ``base_url``
KEYED_PROVIDERS: Final = ("openai", "mistral", "openai_compatible")


class EmbeddingSettings(PluginSettings):
    """Where the prompts are embedded:

    - a registry of the policy's gateway: ``registry_id`` names it; without one (and
      without ``api_key``), the gateway's first enabled registry of ``provider``. The
      registry's own credentials are used.
    - the reference's form: ``provider`` and ``api_key`` (and ``base_url`` for an
      ``openai_compatible`` endpoint or to replace the provider's public URL): the
      provider's embeddings endpoint called with that key. The admin stores the key
      sealed (AES-256-GCM), so it travels sealed on the bus and is shown masked; the
      proxy opens it to call the provider."""

    registry_id: NonBlankStr | None = Field(
        None, description="The id of an embeddings-capable registry of the gateway."
    )
    provider: NonBlankStr = "openai"
    model: NonBlankStr = "text-embedding-ada-002"
    api_key: NonBlankStr | None = Field(
        None,
        description="The provider's key (stored sealed, shown masked); instead of a registry.",
    )
    base_url: NonBlankStr | None = Field(
        None, description="With api_key: the provider's API base URL (e.g. https://host/v1)."
    )

    @field_validator("registry_id")
    @classmethod
    def _registry_uuid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(UUID(value))
        except ValueError:
            raise ValueError("must be a registry's id (a UUID)") from None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlsplit(value.strip())
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("must be an http(s) URL")
        if url.username is not None or url.password is not None:
            raise ValueError("must not carry credentials (user:password@); use api_key")
        return value.strip()

    @model_validator(mode="after")
    def _one_source(self) -> EmbeddingSettings:
        if self.api_key is None:
            if self.base_url is not None:
                raise ValueError("base_url is only used with api_key (a registry has its own)")
            return self
        if self.registry_id is not None:
            raise ValueError(
                "give either registry_id (the registry's credentials) or provider and"
                " api_key, not both"
            )
        provider = self.provider.lower()
        if provider not in KEYED_PROVIDERS:
            raise ValueError(
                f"with api_key, provider must be one of {', '.join(KEYED_PROVIDERS)};"
                " other providers' embeddings go through a registry (registry_id)"
            )
        if provider == "openai_compatible" and self.base_url is None:
            raise ValueError("provider openai_compatible needs base_url")
        return self


class SemanticCacheSettings(PluginSettings):
    similarity_threshold: float = Field(0.85, gt=0, le=1)
    ttl: Duration | None = Field(None, description='Entry lifetime as a duration, e.g. "12h".')
    ttl_seconds: PositiveInt | None = Field(
        None, description="Entry lifetime in seconds; filled from ttl, default 24h."
    )
    scope: Literal["consumer", "global"] = "consumer"
    mode: Literal["semantic", "exact", "both"] = "semantic"
    vector_store: Literal["redis", "pgvector", "in_memory"] | None = Field(
        None,
        description="Not supported: the policy-cache service keeps every policy's entries"
        " (in Redis when it has one, else in its memory) and its own vector index.",
    )
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    cache_only_on_status: list[int] | None = Field(
        None, description="Statuses worth caching; default any 2xx."
    )
    bypass_header: NonBlankStr = "X-Cache-Bypass"
    skip_if_tools_present: bool = True
    skip_if_streaming: bool = False

    @field_validator("vector_store")
    @classmethod
    def _no_vector_store(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "is not supported: the policy-cache service keeps the entries (in Redis when"
                " it has one, else in its memory) and the vector index; leave it out"
            )
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl_positive(cls, value: str | None) -> str | None:
        if value is not None:
            require_duration(value, minimum=1)
        return value

    @field_validator("cache_only_on_status")
    @classmethod
    def _http_statuses(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if not value:
                raise ValueError("must not be empty")
            if any(not 100 <= status <= 599 for status in value):
                raise ValueError("must contain HTTP statuses (100-599)")
        return value

    @model_validator(mode="after")
    def _fill_ttl_seconds(self) -> SemanticCacheSettings:
        if self.ttl_seconds is None:
            self.ttl_seconds = (
                math.ceil(parse_duration(self.ttl, bare=None)) if self.ttl else DEFAULT_TTL_SECONDS
            )
        return self


SEMANTIC_CACHE = PluginSpec(
    id="semantic_cache",
    name="Semantic cache",
    category="caching",
    description=(
        "Answers repeated or semantically similar prompts from a cache (embedding "
        "similarity or exact match) and stores successful responses."
    ),
    stages=("pre_request", "post_response"),
    mandatory_stages=("pre_request", "post_response"),
    default_stages=("pre_request", "post_response"),
    protocols=("LLM",),
    modes=("enforce", "observe"),
    settings_model=SemanticCacheSettings,
    aliases=("semanticcache",),
)
