"""Upstream providers by code. Today: every provider that speaks OpenAI's wire format."""

from __future__ import annotations

from trustgate_proxy.adapters.providers.anthropic import build_anthropic_target
from trustgate_proxy.adapters.providers.azure import build_azure_target
from trustgate_proxy.adapters.providers.base import TargetBuilder, UpstreamTarget
from trustgate_proxy.adapters.providers.bedrock import build_bedrock_target
from trustgate_proxy.adapters.providers.gemini import build_gemini_target
from trustgate_proxy.adapters.providers.openai import PUBLIC_BASE_URLS, build_openai_target
from trustgate_proxy.adapters.providers.vertex import build_vertex_target

BUILDERS: dict[str, TargetBuilder] = {
    **dict.fromkeys(PUBLIC_BASE_URLS, build_openai_target),
    "openai_compatible": build_openai_target,
    "anthropic": build_anthropic_target,
    "azure": build_azure_target,
    "bedrock": build_bedrock_target,
    "gemini": build_gemini_target,
    "google": build_gemini_target,
    "vertex": build_vertex_target,
}
SUPPORTED_PROVIDERS = frozenset(BUILDERS)

__all__ = ["BUILDERS", "SUPPORTED_PROVIDERS", "TargetBuilder", "UpstreamTarget"]
