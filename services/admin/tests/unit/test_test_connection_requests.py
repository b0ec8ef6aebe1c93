"""What the admin sends when it tests a registry: the models list URL and credential
headers per provider (as the proxy sends them), the MCP connection per auth mode, and
messages scrubbed of secrets. Pure functions, no I/O."""

from __future__ import annotations

import pytest

from trustgate_admin.domain.llm_probe import ProbeConfigError, Unsupported, models_request
from trustgate_admin.domain.upstream import (
    NeedsCallerToken,
    checked_timeout,
    mcp_connection,
    scrub,
    secret_values,
)
from trustgate_core.errors import ValidationFailed

KEY = {"type": "api_key", "api_key": {"api_key": "sk-test"}}


@pytest.mark.parametrize(
    ("provider", "options", "url", "header"),
    [
        ("openai", {}, "https://api.openai.com/v1/models", ("Authorization", "Bearer sk-test")),
        ("groq", {}, "https://api.groq.com/openai/v1/models", ("Authorization", "Bearer sk-test")),
        (
            "openai_compatible",
            {"base_url": "http://llm.local:8000"},
            "http://llm.local:8000/v1/models",
            ("Authorization", "Bearer sk-test"),
        ),
        (
            "openai",
            {"base_url": "https://gw.example.com/v1/chat/completions"},
            "https://gw.example.com/v1/models",
            ("Authorization", "Bearer sk-test"),
        ),
        ("anthropic", {}, "https://api.anthropic.com/v1/models", ("x-api-key", "sk-test")),
        (
            "google",
            {"base_url": "http://127.0.0.1:9"},
            "http://127.0.0.1:9/v1beta/models",
            ("x-goog-api-key", "sk-test"),
        ),
    ],
)
def test_each_provider_lists_models_where_its_adapter_does(
    provider: str, options: dict[str, str], url: str, header: tuple[str, str]
) -> None:
    req = models_request(provider, options, KEY)
    assert req.url == url
    assert req.headers[header[0]] == header[1]


def test_anthropic_gets_its_version_header_and_query_keys_stay_in_the_query() -> None:
    assert models_request("anthropic", {}, KEY).headers["anthropic-version"] == "2023-06-01"
    auth = {"type": "api_key", "api_key": {"param_name": "key", "param_value": "k1"}}
    assert models_request("google", {}, auth).params == {"key": "k1"}


def test_providers_without_a_models_list_or_a_key_are_named() -> None:
    for provider in ("azure", "bedrock", "vertex", "cohere"):
        with pytest.raises(Unsupported):
            models_request(provider, {}, KEY)
    with pytest.raises(ProbeConfigError, match="base_url"):
        models_request("openai_compatible", {}, KEY)
    with pytest.raises(ProbeConfigError, match="no credentials"):
        models_request("openai", {}, None)
    with pytest.raises(ProbeConfigError, match="oauth2"):
        models_request("anthropic", {}, {"type": "oauth2", "token_url": "https://x"})


def test_the_mcp_connection_carries_headers_static_auth_and_a_token_request() -> None:
    conn = mcp_connection(
        {
            "url": "https://t.example.com/mcp",
            "headers": {"X-Team": "a"},
            "auth": {"mode": "static", "header": "X-Key", "value": "v"},
        }
    )
    assert conn.headers == {"X-Team": "a", "X-Key": "v"} and conn.token_request is None
    conn = mcp_connection(
        {
            "url": "https://t.example.com/mcp",
            "auth": {
                "mode": "client_credentials",
                "token_url": "https://idp/token",
                "client_id": "c",
                "client_secret": "s",
                "scopes": ["a", "b"],
                "token_endpoint_auth_method": "client_secret_post",
            },
        }
    )
    assert conn.token_request is not None
    assert conn.token_request.form == {"scope": "a b"} and not conn.token_request.basic_auth


@pytest.mark.parametrize("mode", ["passthrough", "exchange", "forwarded"])
def test_modes_needing_a_caller_are_refused(mode: str) -> None:
    with pytest.raises(NeedsCallerToken):
        mcp_connection({"url": "https://t.example.com/mcp", "auth": {"mode": mode}})


def test_secrets_are_scrubbed_and_plain_fields_kept() -> None:
    target = {
        "url": "https://t.example.com/mcp",
        "headers": {"X-Team": "team-secret-1"},
        "auth": {"mode": "static", "header": "X-Key", "value": "value-secret-2"},
    }
    secrets = secret_values(target)
    assert set(secrets) == {"team-secret-1", "value-secret-2"}
    message = "echo team-secret-1 and value-secret-2 from https://t.example.com/mcp"
    assert scrub(message, secrets) == "echo *** and *** from https://t.example.com/mcp"


def test_the_timeout_is_bounded() -> None:
    assert checked_timeout(None) == 10.0
    assert checked_timeout(0.5) == 0.5
    for bad in (0.0, -1.0, 61.0):
        with pytest.raises(ValidationFailed):
            checked_timeout(bad)
