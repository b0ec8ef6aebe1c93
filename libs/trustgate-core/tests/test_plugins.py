from __future__ import annotations

from typing import Any

import pytest

from trustgate_core.errors import ValidationFailed
from trustgate_core.plugins import (
    PLUGINS,
    STAGES,
    glob_match,
    policies_catalog,
    resolve_plugin,
    validate_policy,
)

COLLECTOR = "6f1d7d2e-8a4f-4f5a-9b8e-0c1d2e3f4a5b"

#: A minimal valid settings object per plugin.
VALID: dict[str, dict[str, Any]] = {
    "pii": {},
    "rate_limiter": {"limit": 10, "window": "1m"},
    "per_tool_rate_limiter": {
        "rules": [{"tool": "get_*", "windows": [{"duration": "1m", "max": 5}]}]
    },
    "request_size_limiter": {},
    "token_rate_limiter": {"aggregate": {"max": 100_000, "time_window": "1d"}},
    "semantic_cache": {},
    "model_allowlist": {"allowed_models": ["gpt-4o*"]},
    "tool_allowlist": {"deny_tools": ["shell"]},
    "cors": {"allowed_origins": ["https://app.example.com"]},
    "trustguard": {"collector_id": COLLECTOR},
    "openai_moderation": {"api_key": "sk-test"},
    "azure_content_safety": {
        "api_key": "k",
        "endpoint": "https://x.cognitiveservices.azure.com",
        "category_severity": {"Hate": 4},
    },
    "bedrock_guardrail": {
        "guardrail_id": "gr-1",
        "credentials": {"access_key_id": "AKIA", "secret_access_key": "s"},
    },
    "prompt_template": {"inject_templates": [{"content": "Be brief."}]},
    "prompt_compression": {},
    "tool_injection": {"inject_tools": [{"function": {"name": "lookup"}}]},
    "regex_replace": {
        "target": "request",
        "rules": [{"pattern": r"\d{16}", "replacement": "****"}],
    },
}


def rejects(slug: str, settings: dict[str, Any], field: str, **kwargs: Any) -> str:
    with pytest.raises(ValidationFailed) as caught:
        validate_policy(slug, None, kwargs.pop("mode", None), settings, **kwargs)
    message = caught.value.message
    assert message is not None
    assert message.startswith(f"{field}:") or f"; {field}:" in message, message
    assert caught.value.status == 422
    return message


# --------------------------------------------------------------------------- registry


def test_every_plugin_has_a_valid_example() -> None:
    assert {spec.id for spec in PLUGINS} == set(VALID)


@pytest.mark.parametrize("slug", sorted(VALID))
def test_valid_settings_pass_and_keep_the_canonical_plugin_id(slug: str) -> None:
    policy = validate_policy(slug, None, None, VALID[slug])
    assert policy.plugin == slug
    assert policy.slug == slug
    assert policy.mode == "enforce"
    assert policy.stages


@pytest.mark.parametrize("slug", sorted(VALID))
def test_normalized_settings_and_stages_validate_to_themselves(slug: str) -> None:
    first = validate_policy(slug, None, None, VALID[slug])
    again = validate_policy(slug, list(first.stages), first.mode, first.settings)
    assert again == first


@pytest.mark.parametrize(
    ("alias", "plugin"),
    [
        ("ratelimit", "rate_limiter"),
        ("tokenratelimit", "token_rate_limiter"),
        ("requestsize", "request_size_limiter"),
        ("semanticcache", "semantic_cache"),
    ],
)
def test_readme_aliases_resolve_to_their_plugin_and_the_policy_keeps_the_alias(
    alias: str, plugin: str
) -> None:
    spec = resolve_plugin(alias)
    assert spec is not None and spec.id == plugin
    policy = validate_policy(alias, None, None, VALID[plugin])
    assert policy.slug == alias
    assert policy.plugin == plugin


def test_cors_is_a_plugin_of_its_own() -> None:
    spec = resolve_plugin("cors")
    assert spec is not None and spec.id == "cors"
    assert spec.stages == ("pre_request",)


def test_unknown_slug_is_rejected_naming_the_slug() -> None:
    with pytest.raises(ValidationFailed, match=r"^slug: unknown plugin 'nope'$"):
        validate_policy("nope", None, None, {})
    assert resolve_plugin("nope") is None


def test_no_plugin_id_or_alias_is_shared() -> None:
    names = [name for spec in PLUGINS for name in (spec.id, *spec.aliases)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("spec", PLUGINS, ids=lambda spec: spec.id)
def test_spec_stages_are_consistent(spec: Any) -> None:
    assert set(spec.mandatory_stages) <= set(spec.stages)
    assert set(spec.default_stages) <= set(spec.stages)
    assert spec.default_stages or spec.mandatory_stages
    assert "enforce" in spec.modes
    assert spec.protocols


# --------------------------------------------------------------------------- stages and modes


def test_empty_stage_selection_uses_the_plugin_defaults() -> None:
    policy = validate_policy("openai_moderation", [], None, VALID["openai_moderation"])
    assert policy.stages == ("pre_request", "pre_response")


def test_selected_stages_are_kept_with_the_mandatory_ones_in_canonical_order() -> None:
    policy = validate_policy(
        "openai_moderation", ["pre_response"], None, VALID["openai_moderation"]
    )
    assert policy.stages == ("pre_response",)
    policy = validate_policy(
        "token_rate_limiter", ["post_response"], None, VALID["token_rate_limiter"]
    )
    assert policy.stages == ("pre_request", "post_response")


def test_mandatory_stages_are_added_even_when_not_selected() -> None:
    policy = validate_policy("trustguard", ["pre_request"], None, VALID["trustguard"])
    assert policy.stages == ("pre_request", "pre_response", "post_response")


def test_a_selected_stage_the_plugin_does_not_support_is_rejected_by_name() -> None:
    with pytest.raises(ValidationFailed, match=r"^stages: .*'post_response'"):
        validate_policy("rate_limiter", ["post_response"], None, VALID["rate_limiter"])


def test_an_unknown_stage_is_rejected() -> None:
    with pytest.raises(ValidationFailed, match=r"^stages: unknown stage 'later'"):
        validate_policy("rate_limiter", ["later"], None, VALID["rate_limiter"])


def test_regex_replace_defaults_to_the_stage_of_its_target() -> None:
    response = {"target": "response", "rules": [{"pattern": "secret"}]}
    assert validate_policy("regex_replace", None, None, response).stages == ("pre_response",)
    assert validate_policy("regex_replace", None, None, VALID["regex_replace"]).stages == (
        "pre_request",
    )


def test_effective_stages_follow_the_canonical_order() -> None:
    for spec in PLUGINS:
        policy = validate_policy(spec.id, list(reversed(spec.stages)), None, VALID[spec.id])
        assert list(policy.stages) == [s for s in STAGES if s in policy.stages]


def test_mode_defaults_to_enforce() -> None:
    assert validate_policy("rate_limiter", None, None, VALID["rate_limiter"]).mode == "enforce"


def test_throttle_is_allowed_for_the_rate_limiter_only() -> None:
    assert (
        validate_policy("rate_limiter", None, "throttle", VALID["rate_limiter"]).mode == "throttle"
    )
    with pytest.raises(ValidationFailed, match=r"^mode: .*'throttle'"):
        validate_policy("token_rate_limiter", None, "throttle", VALID["token_rate_limiter"])


def test_enforce_only_plugins_refuse_observe() -> None:
    for slug in ("per_tool_rate_limiter", "tool_injection"):
        with pytest.raises(ValidationFailed, match=r"^mode: "):
            validate_policy(slug, None, "observe", VALID[slug])


def test_an_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValidationFailed, match=r"^mode: must be one of enforce, throttle, observe"):
        validate_policy("rate_limiter", None, "block", VALID["rate_limiter"])


def test_llm_only_plugins_are_refused_for_mcp_consumers() -> None:
    with pytest.raises(ValidationFailed, match=r"does not support MCP"):
        validate_policy("semantic_cache", None, None, {}, protocol="MCP")
    assert validate_policy("rate_limiter", None, None, VALID["rate_limiter"], protocol="mcp")


def test_settings_must_be_an_object_and_none_means_empty() -> None:
    assert validate_policy("request_size_limiter", None, None, None).settings["size_unit"] == (
        "megabytes"
    )
    with pytest.raises(ValidationFailed, match=r"^settings: must be an object"):
        validate_policy("request_size_limiter", None, None, ["x"])  # type: ignore[arg-type]


def test_unknown_settings_keys_are_rejected_by_name() -> None:
    rejects("rate_limiter", {**VALID["rate_limiter"], "burst": 3}, "settings.burst")


# --------------------------------------------------------------------------- rate_limiter


def test_rate_limiter_keeps_retry_after_unset_unless_given() -> None:
    # unset, Retry-After is the real time until a slot frees; given, it is announced as is
    policy = validate_policy("rate_limiter", None, None, {"limit": 5, "window": "1.5s"})
    assert policy.settings == {"limit": 5, "window": "1.5s", "on_error": "fail_open"}
    given = validate_policy(
        "rate_limiter", None, None, {"limit": 5, "window": "1m", "retry_after": 7}
    )
    assert given.settings["retry_after"] == "7"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"window": "1m"}, "settings.limit"),
        ({"limit": 0, "window": "1m"}, "settings.limit"),
        ({"limit": 2.5, "window": "1m"}, "settings.limit"),
        ({"limit": True, "window": "1m"}, "settings.limit"),
        ({"limit": "10", "window": "1m"}, "settings.limit"),
        ({"limit": 1}, "settings.window"),
        ({"limit": 1, "window": "soon"}, "settings.window"),
        ({"limit": 1, "window": "500ms"}, "settings.window"),
        ({"limit": 1, "window": "1m", "retry_after": "0"}, "settings.retry_after"),
        ({"limit": 1, "window": "1m", "group_by_header": ""}, "settings.group_by_header"),
    ],
)
def test_rate_limiter_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("rate_limiter", settings, field)


def test_rate_limiter_limit_error_reads_as_a_positive_integer_rule() -> None:
    message = rejects("rate_limiter", {"limit": 0, "window": "1m"}, "settings.limit")
    assert message == "settings.limit: must be an integer > 0"


# --------------------------------------------------------------------------- per_tool_rate_limiter


def test_per_tool_rate_limiter_fills_the_default_behavior() -> None:
    settings = validate_policy(
        "per_tool_rate_limiter", None, None, VALID["per_tool_rate_limiter"]
    ).settings
    assert settings["behavior_default"] == "reject_response"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"rules": []}, "settings.rules"),
        (
            {"rules": [{"tool": "", "windows": [{"duration": "1m", "max": 1}]}]},
            "settings.rules[0].tool",
        ),
        ({"rules": [{"tool": "t", "windows": []}]}, "settings.rules[0].windows"),
        (
            {"rules": [{"tool": "t", "windows": [{"duration": "1.5s", "max": 1}]}]},
            "settings.rules[0].windows[0].duration",
        ),
        (
            {"rules": [{"tool": "t", "windows": [{"duration": "1m", "max": 0}]}]},
            "settings.rules[0].windows[0].max",
        ),
        (
            {"rules": [{"tool": "t", "windows": [{"duration": "1m", "max": 1}], "behavior": "x"}]},
            "settings.rules[0].behavior",
        ),
    ],
)
def test_per_tool_rate_limiter_rejects_invalid_settings(
    settings: dict[str, Any], field: str
) -> None:
    rejects("per_tool_rate_limiter", settings, field)


def test_per_tool_rate_limiter_can_only_reject_for_mcp_consumers() -> None:
    rule = {"tool": "t", "windows": [{"duration": "1m", "max": 1}]}
    rewriting = {"rules": [{**rule, "behavior": "inject_error_result"}]}
    assert validate_policy("per_tool_rate_limiter", None, None, rewriting)
    rejects("per_tool_rate_limiter", rewriting, "settings.rules[0].behavior", protocol="MCP")
    default = {"rules": [rule], "behavior_default": "strip_tool_from_request"}
    rejects("per_tool_rate_limiter", default, "settings.behavior_default", protocol="MCP")


# --------------------------------------------------------------------------- token_rate_limiter


def test_token_rate_limiter_fills_defaults() -> None:
    settings = validate_policy(
        "token_rate_limiter", None, None, VALID["token_rate_limiter"]
    ).settings
    assert settings["unit"] == "tokens"
    assert settings["counting"] == "total"
    assert settings["behavior_on_exceeded"] == "reject"
    assert settings["count_cache_reads"] is False


def test_token_rate_limiter_accepts_each_kind_of_limit_alone() -> None:
    for settings in (
        {"window": {"unit": "minute", "max": 1000}},
        {"rules": [{"model": "gpt-4o*", "max": 5000, "time_window": "1h"}]},
        {"aggregate": {"max": 5000, "time_window": "60s"}},
        {"cost_cap": {"enabled": True, "max_output_cost_per_1k_tokens": 0.06}},
    ):
        assert validate_policy("token_rate_limiter", None, None, settings)


def test_token_rate_limiter_needs_some_limit() -> None:
    message = rejects("token_rate_limiter", {}, "settings.rules")
    assert "window, rules, aggregate or an enabled cost_cap" in message
    rejects("token_rate_limiter", {"cost_cap": {"enabled": False}}, "settings.rules")


def test_dollar_budgets_may_be_fractional_but_token_maxima_must_be_integers() -> None:
    dollars = {"unit": "dollars", "aggregate": {"max": 12.5, "time_window": "1d"}}
    assert validate_policy("token_rate_limiter", None, None, dollars).settings["aggregate"] == {
        "max": 12.5,
        "time_window": "1d",
    }
    rejects(
        "token_rate_limiter",
        {"aggregate": {"max": 12.5, "time_window": "1d"}},
        "settings.aggregate.max",
    )
    rejects(
        "token_rate_limiter",
        {"rules": [{"model": "a", "max": 1.5, "time_window": "1h"}]},
        "settings.rules[0].max",
    )


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"unit": "euros", "window": {"unit": "day", "max": 1}}, "settings.unit"),
        ({"counting": "both", "window": {"unit": "day", "max": 1}}, "settings.counting"),
        (
            {"rules": [{"model": "a", "max": 10, "time_window": "30s"}]},
            "settings.rules[0].time_window",
        ),
        ({"rules": [{"model": "a", "max": 0, "time_window": "1h"}]}, "settings.rules[0].max"),
        ({"rules": [{"model": "", "max": 1, "time_window": "1h"}]}, "settings.rules[0].model"),
        ({"aggregate": {"max": 10, "time_window": "1w"}}, "settings.aggregate.time_window"),
        ({"window": {"unit": "week", "max": 1}}, "settings.window.unit"),
        (
            {"window": {"unit": "day", "max": 1}, "behavior_on_exceeded": "downgrade_model"},
            "settings.downgrade_to",
        ),
        (
            {"window": {"unit": "day", "max": 1}, "downgrade_to": "@openai/ gpt"},
            "settings.downgrade_to",
        ),
        (
            {
                "window": {"unit": "day", "max": 1},
                "custom_pricing": {"m": {"input": -1, "output": 0}},
            },
            "settings.custom_pricing.m.input",
        ),
        ({"cost_cap": {"enabled": True}}, "settings.cost_cap.max_input_cost_per_1k_tokens"),
        (
            {
                "cost_cap": {
                    "enabled": True,
                    "max_input_cost_per_1k_tokens": 0.01,
                    "behavior_on_violation": "downgrade",
                }
            },
            "settings.cost_cap.downgrade_to",
        ),
        (
            {
                "cost_cap": {
                    "enabled": True,
                    "max_input_cost_per_1k_tokens": 0.01,
                    "unknown_model": "allow",
                }
            },
            "settings.cost_cap.unknown_model",
        ),
    ],
)
def test_token_rate_limiter_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("token_rate_limiter", settings, field)


def test_token_rate_limiter_downgrade_accepts_model_or_provider_model() -> None:
    for target in ("gpt-4o-mini", "@openai/gpt-4o-mini"):
        settings = {
            "window": {"unit": "hour", "max": 10},
            "behavior_on_exceeded": "downgrade_model",
            "downgrade_to": target,
        }
        assert validate_policy("token_rate_limiter", None, None, settings).settings[
            "downgrade_to"
        ] == (target)


def test_cost_cap_per_model_override_counts_as_a_ceiling() -> None:
    settings = {
        "cost_cap": {
            "enabled": True,
            "per_model_overrides": {"gpt-4o": {"max_input_cost_per_1k_tokens": 0.005}},
        }
    }
    cap = validate_policy("token_rate_limiter", None, None, settings).settings["cost_cap"]
    assert cap["unknown_model"] == "pass_through"
    assert cap["behavior_on_violation"] == "reject"


# --------------------------------------------------------------------------- request_size_limiter


def test_request_size_limiter_fills_defaults() -> None:
    assert validate_policy("requestsize", None, None, {}).settings == {
        "allowed_payload_size": 10,
        "size_unit": "megabytes",
        "max_chars_per_request": 100_000,
        "require_content_length": False,
    }


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"allowed_payload_size": 0}, "settings.allowed_payload_size"),
        ({"allowed_payload_size": "1"}, "settings.allowed_payload_size"),
        ({"size_unit": "gigabytes"}, "settings.size_unit"),
        ({"max_chars_per_request": -1}, "settings.max_chars_per_request"),
        ({"require_content_length": "yes"}, "settings.require_content_length"),
    ],
)
def test_request_size_limiter_rejects_invalid_settings(
    settings: dict[str, Any], field: str
) -> None:
    rejects("request_size_limiter", settings, field)


# --------------------------------------------------------------------------- semantic_cache


def test_semantic_cache_fills_defaults() -> None:
    settings = validate_policy("semantic_cache", None, None, {}).settings
    assert settings == {
        "similarity_threshold": 0.85,
        "ttl_seconds": 86400,
        "scope": "consumer",
        "mode": "semantic",
        "embedding": {"provider": "openai", "model": "text-embedding-ada-002"},
        "bypass_header": "X-Cache-Bypass",
        "skip_if_tools_present": True,
        "skip_if_streaming": False,
    }


def test_semantic_cache_derives_ttl_seconds_from_ttl() -> None:
    settings = validate_policy("semantic_cache", None, None, {"ttl": "1d"}).settings
    assert settings["ttl"] == "1d"
    assert settings["ttl_seconds"] == 86400


def test_semantic_cache_threshold_of_one_is_allowed() -> None:
    assert validate_policy("semantic_cache", None, None, {"similarity_threshold": 1}).settings[
        "similarity_threshold"
    ] == (1.0)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"similarity_threshold": 0}, "settings.similarity_threshold"),
        ({"similarity_threshold": 1.01}, "settings.similarity_threshold"),
        ({"ttl": "forever"}, "settings.ttl"),
        ({"ttl_seconds": 0}, "settings.ttl_seconds"),
        ({"scope": "tenant"}, "settings.scope"),
        ({"mode": "fuzzy"}, "settings.mode"),
        ({"vector_store": "faiss"}, "settings.vector_store"),
        # the service keeps every policy's entries: a store per policy would be ignored
        ({"vector_store": "pgvector"}, "settings.vector_store"),
        ({"vector_store": "redis"}, "settings.vector_store"),
        ({"embedding": {"provider": ""}}, "settings.embedding.provider"),
        ({"cache_only_on_status": [200, 700]}, "settings.cache_only_on_status"),
    ],
)
def test_semantic_cache_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("semantic_cache", settings, field)


# --------------------------------------------------------------------------- cors


def test_cors_fills_defaults_and_normalizes_methods_and_max_age() -> None:
    settings = validate_policy(
        "cors",
        None,
        None,
        {
            "allowed_origins": ["https://app.example.com/"],
            "allowed_methods": ["get"],
            "max_age": "1h",
        },
    ).settings
    assert settings == {
        "allowed_origins": ["https://app.example.com"],
        "allowed_methods": ["GET"],
        "allowed_headers": [],
        "expose_headers": [],
        "allow_credentials": False,
        "max_age": 3600,
        "log_violations": False,
    }


def test_cors_allows_credentials_with_explicit_origins() -> None:
    settings = {"allowed_origins": ["http://localhost:3000"], "allow_credentials": True}
    assert validate_policy("cors", None, None, settings).settings["allow_credentials"] is True


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "settings.allowed_origins"),
        ({"allowed_origins": []}, "settings.allowed_origins"),
        ({"allowed_origins": ["app.example.com"]}, "settings.allowed_origins"),
        ({"allowed_origins": ["ftp://example.com"]}, "settings.allowed_origins"),
        ({"allowed_origins": ["*"], "allow_credentials": True}, "settings.allow_credentials"),
        ({"allowed_origins": ["*"], "allowed_methods": ["FETCH"]}, "settings.allowed_methods"),
        ({"allowed_origins": ["*"], "allowed_methods": []}, "settings.allowed_methods"),
        ({"allowed_origins": ["*"], "max_age": -1}, "settings.max_age"),
        ({"allowed_origins": ["*"], "allowed_headers": "X-A"}, "settings.allowed_headers"),
    ],
)
def test_cors_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("cors", settings, field)


# --------------------------------------------------------------------------- model_allowlist


def test_model_allowlist_substitutes_only_with_an_allowed_model() -> None:
    ok = {
        "allowed_models": ["gpt-4o*"],
        "behavior_on_disallowed": "substitute",
        "substitute_with": "gpt-4o-mini",
    }
    assert validate_policy("model_allowlist", None, None, ok)
    rejects("model_allowlist", {**ok, "substitute_with": "claude-3"}, "settings.substitute_with")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"allowed_models": []}, "settings.allowed_models"),
        ({"allowed_models": [" "]}, "settings.allowed_models[0]"),
        (
            {"allowed_models": ["a"], "behavior_on_disallowed": "substitute"},
            "settings.substitute_with",
        ),
        ({"allowed_models": ["a"], "substitute_with": "a"}, "settings.substitute_with"),
        ({"allowed_models": ["a"], "default_model": "b"}, "settings.default_model"),
        (
            {"allowed_models": ["a"], "behavior_on_disallowed": "warn"},
            "settings.behavior_on_disallowed",
        ),
    ],
)
def test_model_allowlist_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("model_allowlist", settings, field)


# --------------------------------------------------------------------------- tool_allowlist


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "settings.allow_tools"),
        ({"allow_tools": [""]}, "settings.allow_tools[0]"),
        ({"allow_tools": ["a"], "on_empty_after_filter": "drop"}, "settings.on_empty_after_filter"),
        ({"allow_tools": ["a"], "scope": "tenant"}, "settings.scope"),
    ],
)
def test_tool_allowlist_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("tool_allowlist", settings, field)


# --------------------------------------------------------------------------- trustguard


def test_trustguard_fills_defaults_and_accepts_direction_for_inspect() -> None:
    settings = validate_policy(
        "trustguard", None, None, {"collector_id": COLLECTOR, "direction": "request"}
    ).settings
    assert settings == {
        "inspect": "request",
        "collector_id": COLLECTOR,
        "on_error": "fail_open",
        "on_timeout": "fail_open",
    }


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "settings.collector_id"),
        ({"collector_id": "abc"}, "settings.collector_id"),
        ({"collector_id": COLLECTOR, "inspect": "both"}, "settings.inspect"),
        ({"collector_id": COLLECTOR, "on_error": "retry"}, "settings.on_error"),
        ({"collector_id": COLLECTOR, "timeout": "100ms"}, "settings.timeout"),
        ({"collector_id": COLLECTOR, "timeout": "5m"}, "settings.timeout"),
    ],
)
def test_trustguard_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("trustguard", settings, field)


# --------------------------------------------------------------------------- openai_moderation


def test_openai_moderation_blocks_on_flagged_unless_thresholds_are_given() -> None:
    plain = validate_policy("openai_moderation", None, None, {"api_key": "k"}).settings
    assert plain["block_on_flagged"] is True
    assert plain["model"] == "omni-moderation-latest"
    tuned = validate_policy(
        "openai_moderation", None, None, {"api_key": "k", "thresholds": {"violence": 0.5}}
    ).settings
    assert tuned["block_on_flagged"] is False


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "settings.api_key"),
        ({"api_key": " "}, "settings.api_key"),
        ({"api_key": "k", "thresholds": {"violence": 1.5}}, "settings.thresholds"),
        ({"api_key": "k", "action": {"message": 3}}, "settings.action.message"),
    ],
)
def test_openai_moderation_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("openai_moderation", settings, field)


# --------------------------------------------------------------------------- azure_content_safety


def test_azure_content_safety_fills_all_categories_by_default() -> None:
    settings = validate_policy(
        "azure_content_safety", None, None, VALID["azure_content_safety"]
    ).settings
    assert settings["categories"] == ["Hate", "Violence", "SelfHarm", "Sexual"]
    assert settings["output_type"] == "FourSeverityLevels"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"endpoint": "not a url"}, "settings.endpoint"),
        ({"api_key": ""}, "settings.api_key"),
        ({"category_severity": {}}, "settings.category_severity"),
        ({"category_severity": {"Hate": 3}}, "settings.category_severity.Hate"),
        ({"category_severity": {"Hate": 8}}, "settings.category_severity.Hate"),
        ({"category_severity": {"Spam": 2}}, "settings.category_severity.Spam"),
        (
            {"categories": ["Hate"], "category_severity": {"Sexual": 2}},
            "settings.category_severity.Sexual",
        ),
        ({"output_type": "TwoLevels"}, "settings.output_type"),
    ],
)
def test_azure_content_safety_rejects_invalid_settings(changes: dict[str, Any], field: str) -> None:
    rejects("azure_content_safety", {**VALID["azure_content_safety"], **changes}, field)


def test_azure_eight_severity_levels_allow_odd_thresholds() -> None:
    settings = {
        **VALID["azure_content_safety"],
        "output_type": "EightSeverityLevels",
        "category_severity": {"Hate": 3},
    }
    assert validate_policy("azure_content_safety", None, None, settings)


# --------------------------------------------------------------------------- bedrock_guardrail


def test_bedrock_guardrail_fills_defaults_and_accepts_a_role() -> None:
    settings = validate_policy(
        "bedrock_guardrail",
        None,
        None,
        {
            "guardrail_id": "g",
            "credentials": {"use_role": True, "role_arn": "arn:aws:iam::1:role/r"},
        },
    ).settings
    assert settings["version"] == "DRAFT"
    assert settings["pii_action"] == "block"
    assert settings["credentials"]["aws_region"] == "us-east-1"
    assert settings["credentials"]["session_name"] == "BedrockClientSession"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (
            {"credentials": {"access_key_id": "a", "secret_access_key": "s"}},
            "settings.guardrail_id",
        ),
        ({"guardrail_id": "g"}, "settings.credentials"),
        ({"guardrail_id": "g", "credentials": {"use_role": True}}, "settings.credentials.role_arn"),
        (
            {"guardrail_id": "g", "credentials": {"access_key_id": "a"}},
            "settings.credentials.secret_access_key",
        ),
        (
            {**VALID["bedrock_guardrail"], "pii_action": "redact"},
            "settings.pii_action",
        ),
    ],
)
def test_bedrock_guardrail_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("bedrock_guardrail", settings, field)


# --------------------------------------------------------------------------- transformations


def test_prompt_template_fills_defaults() -> None:
    settings = validate_policy("prompt_template", None, None, VALID["prompt_template"]).settings
    assert settings["template_engine"] == "mustache"
    assert settings["inject_templates"][0] == {
        "position": "system",
        "role": "system",
        "content": "Be brief.",
        "on_existing_system": "merge",
    }


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "settings.inject_templates"),
        ({"inject_templates": [{"content": ""}]}, "settings.inject_templates[0].content"),
        (
            {"named_templates": [{"name": "t", "versions": []}]},
            "settings.named_templates[0].versions",
        ),
        (
            {
                "named_templates": [
                    {"name": "t", "versions": [{"version": "1", "content": "a"}]},
                    {"name": "t", "versions": [{"version": "1", "content": "b"}]},
                ]
            },
            "settings.named_templates[1].name",
        ),
        (
            {
                "inject_templates": [{"content": "x"}],
                "context_variables": {"u": {"source": "cookie", "name": "a"}},
            },
            "settings.context_variables.u.source",
        ),
        (
            {"inject_templates": [{"content": "x"}], "template_engine": "handlebars"},
            "settings.template_engine",
        ),
    ],
)
def test_prompt_template_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("prompt_template", settings, field)


def test_prompt_compression_fills_defaults() -> None:
    assert validate_policy("prompt_compression", None, None, {}).settings == {
        "compress_json": True,
        "normalize_whitespace": True,
        "strip_ansi": True,
        "max_consecutive_blank_lines": 1,
        "min_length": 0,
        "max_body_bytes": 1048576,
        "target_roles": [],
    }


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (
            {"compress_json": False, "normalize_whitespace": False, "strip_ansi": False},
            "settings.compress_json",
        ),
        ({"max_consecutive_blank_lines": 0}, "settings.max_consecutive_blank_lines"),
        ({"min_length": -1}, "settings.min_length"),
        ({"max_body_bytes": -1}, "settings.max_body_bytes"),
        ({"target_roles": [""]}, "settings.target_roles[0]"),
    ],
)
def test_prompt_compression_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("prompt_compression", settings, field)


def test_tool_injection_fills_defaults() -> None:
    settings = validate_policy("tool_injection", None, None, VALID["tool_injection"]).settings
    assert settings == {
        "inject_tools": [{"type": "function", "function": {"name": "lookup"}}],
        "on_conflict": "gateway_wins",
    }


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"inject_tools": []}, "settings.inject_tools"),
        ({"inject_tools": [{"function": {"name": ""}}]}, "settings.inject_tools[0].function.name"),
        (
            {"inject_tools": [{"type": "retrieval", "function": {"name": "a"}}]},
            "settings.inject_tools[0].type",
        ),
        (
            {"inject_tools": [{"function": {"name": "a"}}], "on_conflict": "merge"},
            "settings.on_conflict",
        ),
    ],
)
def test_tool_injection_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("tool_injection", settings, field)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"rules": [{"pattern": "a"}]}, "settings.target"),
        ({"target": "body", "rules": [{"pattern": "a"}]}, "settings.target"),
        ({"target": "request", "rules": []}, "settings.rules"),
        ({"target": "request", "rules": [{"pattern": ""}]}, "settings.rules[0].pattern"),
        ({"target": "request", "rules": [{"pattern": "a("}]}, "settings.rules[0].pattern"),
    ],
)
def test_regex_replace_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    rejects("regex_replace", settings, field)


def test_every_error_names_each_offending_field() -> None:
    message = rejects("rate_limiter", {"limit": -1, "window": "x"}, "settings.limit")
    assert "settings.window:" in message


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("window", ["1", "90", "-1s", "1m 30s", "1w", ""])
def test_a_policy_duration_needs_a_unit(window: str) -> None:
    with pytest.raises(ValidationFailed, match=r"settings\.window: must be a duration"):
        validate_policy("rate_limiter", None, None, {"limit": 10, "window": window})


def test_glob_match_uses_star_as_the_only_wildcard() -> None:
    assert glob_match("gpt-4o*", "gpt-4o-mini")
    assert glob_match("*", "anything/at/all")
    assert glob_match("a*c", "abbbc")
    assert not glob_match("gpt-4o", "gpt-4o-mini")
    assert not glob_match("a?c", "abc")
    assert glob_match("a?c", "a?c")


# --------------------------------------------------------------------------- catalog


def test_policies_catalog_lists_every_plugin_once_grouped_by_type() -> None:
    catalog = policies_catalog()
    slugs = [item["slug"] for group in catalog["groups"] for item in group["items"]]
    assert sorted(slugs) == sorted(spec.id for spec in PLUGINS)
    types = [group["type"] for group in catalog["groups"]]
    assert len(types) == len(set(types))


def test_catalog_entries_describe_the_plugin() -> None:
    items = {i["slug"]: i for g in policies_catalog()["groups"] for i in g["items"]}
    limiter = items["rate_limiter"]
    for key in (
        "slug",
        "name",
        "description",
        "stages",
        "mandatory_stages",
        "protocols",
        "modes",
        "aliases",
        "settings_schema",
    ):
        assert key in limiter
    assert limiter["aliases"] == ["ratelimit"]
    assert limiter["modes"] == ["enforce", "throttle", "observe"]
    schema = limiter["settings_schema"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"limit", "window"}
    assert schema["properties"]["limit"]["exclusiveMinimum"] == 0


def test_policies_catalog_returns_a_fresh_copy() -> None:
    first = policies_catalog()
    first["groups"].clear()
    assert policies_catalog()["groups"]
