from __future__ import annotations

import re
import uuid
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from trustgate_admin.domain.catalog import Catalog, check_attachable, check_enforced
from trustgate_core.errors import ValidationFailed
from trustgate_core.plugins import PLUGINS

PROVIDER_CODES = {
    "openai",
    "openai_compatible",
    "google",
    "vertex",
    "anthropic",
    "bedrock",
    "azure",
    "mistral",
    "groq",
    "deepseek",
    "xai",
    "cerebras",
    "openrouter",
    "cohere",
}
WIRE_FORMATS = {"openai", "openai_responses", "anthropic", "google", "bedrock", "mistral", "cohere"}
REGISTRY_AUTH_TYPES = {"api_key", "azure", "aws", "oauth2", "gcp_service_account"}
MODEL_FIELDS = {
    "id",
    "provider_id",
    "slug",
    "external_id",
    "display_name",
    "input_price",
    "output_price",
    "context_window",
    "max_output",
    "capabilities",
    "input_modalities",
    "output_modalities",
    "release_date",
    "enabled",
    "source",
}
MCP_FIELDS = {
    "code",
    "display_name",
    "vendor",
    "category",
    "description",
    "url",
    "transport",
    "url_variables",
    "auth_headers",
    "oauth",
    "requires_auth",
    "requires_config",
    "tools",
    "relevance",
    "source",
    "metadata",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def test_catalog_lists_every_provider_code_once(catalog: Catalog) -> None:
    codes = [p["code"] for p in catalog.providers()]
    assert len(codes) == len(set(codes))
    assert set(codes) == PROVIDER_CODES


def test_every_provider_has_the_catalog_fields(catalog: Catalog) -> None:
    for provider in catalog.providers():
        assert uuid.UUID(provider["id"])
        assert provider["display_name"]
        assert provider["wire_format"] in WIRE_FORMATS
        assert provider["source"] == "curated"
        assert isinstance(provider["provider_options_schema"], list)
        assert isinstance(provider["metadata"], dict)
        assert "base_url" in provider["metadata"]
        assert provider["auth_types"], provider["code"]
        for auth in provider["auth_types"]:
            assert set(auth) == {"type", "variant", "label", "description", "fields"}
            assert auth["type"] in REGISTRY_AUTH_TYPES
            assert auth["fields"] and all(field["key"] for field in auth["fields"])
        for option in provider["provider_options_schema"]:
            assert option["key"] and option["label"]
            assert option["type"] in {"string", "enum", "map"}


def test_provider_ids_are_unique_and_stable(catalog: Catalog) -> None:
    ids = [p["id"] for p in catalog.providers()]
    assert len(ids) == len(set(ids))
    assert ids == [p["id"] for p in Catalog().providers()]


def test_providers_use_their_documented_wire_formats(catalog: Catalog) -> None:
    wire = {p["code"]: p["wire_format"] for p in catalog.providers()}
    for code in ("azure", "groq", "deepseek", "xai", "openrouter", "openai_compatible"):
        assert wire[code] == "openai"
    assert wire["vertex"] == "google"
    assert wire["anthropic"] == "anthropic"
    assert wire["cohere"] == "cohere"


def test_providers_carry_their_default_base_url(catalog: Catalog) -> None:
    base = {p["code"]: p["metadata"]["base_url"] for p in catalog.providers()}
    assert base["openai"] == "https://api.openai.com/v1"
    assert base["anthropic"] == "https://api.anthropic.com/v1"
    assert base["google"] == "https://generativelanguage.googleapis.com/v1beta"
    assert base["cohere"] == "https://api.cohere.com"
    assert base["openai_compatible"] is None


def test_provider_options_match_the_reference(catalog: Catalog) -> None:
    def options(code: str) -> dict[str, dict[str, object]]:
        provider = catalog.provider(code)
        assert provider is not None
        return {o["key"]: o for o in provider["provider_options_schema"]}

    assert options("openai_compatible")["base_url"]["required"] is True
    assert options("vertex")["project"]["required"] is True
    assert options("vertex")["location"]["required"] is True
    assert options("vertex")["version"]["default"] == "v1"
    assert options("openai")["api"]["enum"] == ["completions", "responses"]


def test_gemini_is_an_alias_of_google(catalog: Catalog) -> None:
    gemini = catalog.provider("gemini")
    assert gemini is not None and gemini["code"] == "google"
    assert "gemini" in catalog.provider_codes()
    assert PROVIDER_CODES <= catalog.provider_codes()
    assert catalog.models("gemini") == catalog.models("google")


def test_unknown_provider_is_none(catalog: Catalog) -> None:
    assert catalog.provider("nope") is None
    assert catalog.models("nope") == []


def test_every_model_belongs_to_a_catalog_provider(catalog: Catalog) -> None:
    providers = {p["id"]: p["code"] for p in catalog.providers()}
    for model in catalog.models():
        assert model["provider_id"] in providers, model["slug"]
        assert providers[model["provider_id"]] == model["provider"]


def test_every_model_has_the_catalog_fields(catalog: Catalog) -> None:
    models = catalog.models()
    assert models
    for model in models:
        assert MODEL_FIELDS <= set(model), model["slug"]
        assert uuid.UUID(model["id"])
        assert model["source"] == "curated"
        assert model["enabled"] is True
        assert isinstance(model["capabilities"], dict)
        assert model["input_modalities"] and model["output_modalities"]
        if model["release_date"] is not None:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", model["release_date"])


def test_model_prices_are_decimal_strings_in_usd_per_million_tokens(catalog: Catalog) -> None:
    for model in catalog.models():
        for field in ("input_price", "output_price"):
            price = model[field]
            if price is not None:
                assert isinstance(price, str)
                assert Decimal(price) >= 0
                assert Decimal(price) < 1000, (model["slug"], field)


def test_model_ids_and_provider_slug_pairs_are_unique(catalog: Catalog) -> None:
    models = catalog.models()
    assert len({m["id"] for m in models}) == len(models)
    assert len({(m["provider"], m["slug"]) for m in models}) == len(models)


def test_models_can_be_filtered_by_provider(catalog: Catalog) -> None:
    openai = catalog.models("openai")
    assert openai and all(m["provider"] == "openai" for m in openai)
    assert any(m["slug"] == "gpt-4o" for m in openai)


def test_accessors_return_copies(catalog: Catalog) -> None:
    catalog.providers()[0]["code"] = "changed"
    catalog.models()[0]["slug"] = "changed"
    catalog.mcp_servers().clear()
    assert catalog.providers()[0]["code"] != "changed"
    assert catalog.models()[0]["slug"] != "changed"
    assert catalog.mcp_servers()


def test_mcp_servers_have_the_catalog_fields(catalog: Catalog) -> None:
    servers = catalog.mcp_servers()
    codes = [s["code"] for s in servers]
    assert len(codes) == len(set(codes))
    assert {"github", "atlassian", "linear", "notion", "sentry", "stripe"} <= set(codes)
    for server in servers:
        assert set(server) == MCP_FIELDS, server["code"]
        assert server["transport"] == "streamable-http"
        assert urlsplit(server["url"]).scheme == "https"
        assert server["source"] == "curated"
        assert isinstance(server["oauth"]["required"], bool)
        if server["oauth"]["required"]:
            assert server["requires_auth"] is True
        for header in server["auth_headers"]:
            assert {"name", "description", "required", "secret"} <= set(header)


def test_policies_catalog_lists_every_plugin(catalog: Catalog) -> None:
    groups = catalog.policies()["groups"]
    slugs = {item["slug"] for group in groups for item in group["items"]}
    assert slugs == {spec.id for spec in PLUGINS}
    assert "cors" in slugs
    for group in groups:
        assert group["type"]
        for item in group["items"]:
            assert item["settings_schema"]["type"] == "object"


def test_policies_catalog_says_which_planes_enforce_each_plugin(catalog: Catalog) -> None:
    items = {
        item["slug"]: item for group in catalog.policies()["groups"] for item in group["items"]
    }
    on = {slug: item["enforced_on"] for slug, item in items.items()}
    assert on["rate_limiter"] == ["LLM", "MCP"]
    assert on["request_size_limiter"] == ["LLM", "MCP"]
    assert on["tool_allowlist"] == ["LLM", "MCP"]
    assert on["per_tool_rate_limiter"] == ["MCP"]
    assert on["token_rate_limiter"] == ["LLM"] and on["cors"] == ["LLM"]
    assert on["semantic_cache"] == ["LLM"] and on["pii"] == ["LLM"]
    assert on["prompt_compression"] == []
    for item in items.values():
        assert item["enforced"] is bool(item["enforced_on"])
        assert set(item["enforced_on"]) <= set(item["protocols"])


def test_a_policy_attaches_only_to_a_consumer_of_a_plane_that_enforces_it() -> None:
    check_enforced("per_tool_rate_limiter")
    with pytest.raises(ValidationFailed, match="not supported yet"):
        check_enforced("prompt_compression")
    rule = {"tool": "search", "windows": [{"duration": "1m", "max": 5}]}
    check_attachable("per_tool_rate_limiter", None, None, {"rules": [rule]}, "MCP")
    check_attachable("ratelimit", None, None, {"limit": 5, "window": "1m"}, "MCP")  # an alias
    with pytest.raises(ValidationFailed) as llm:
        check_attachable("per_tool_rate_limiter", None, None, {"rules": [rule]}, "LLM")
    assert llm.value.message == (
        "policy_id: plugin 'per_tool_rate_limiter' is not enforced on LLM consumers "
        "(enforced on MCP consumers only)"
    )
    with pytest.raises(ValidationFailed, match="not enforced on MCP consumers"):
        check_attachable("token_rate_limiter", None, None, {}, "MCP")
    stripping = {"rules": [{**rule, "behavior": "strip_tool_from_request"}]}
    with pytest.raises(ValidationFailed, match=r"rules\[0\]\.behavior.*MCP consumer"):
        check_attachable("per_tool_rate_limiter", None, None, stripping, "MCP")


def test_catalog_reads_nothing_until_asked() -> None:
    fresh = Catalog()
    assert fresh._cache == {}
    fresh.mcp_servers()
    assert set(fresh._cache) == {"mcp_servers.json"}
