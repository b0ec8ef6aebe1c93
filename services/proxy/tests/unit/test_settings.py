"""The proxy's durations: a bare number is seconds; Go-style strings carry their unit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trustgate_proxy.settings import ProxySettings


def test_duration_settings_read_bare_numbers_as_seconds_and_go_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVER_IDLE_TIMEOUT", "90")
    monkeypatch.setenv("PROVIDER_REQUEST_TIMEOUT", "1m30s")
    monkeypatch.setenv("PROVIDER_CONNECT_TIMEOUT", "250ms")
    monkeypatch.setenv("PROXY_UPSTREAM_KEEPALIVE", "1.5")
    settings = ProxySettings()
    assert settings.idle_timeout == 90.0
    assert settings.provider_request_timeout == 90.0
    assert settings.provider_connect_timeout == 0.25
    assert settings.upstream_keepalive == 1.5


@pytest.mark.parametrize("value", ["soon", "-5", "10 parsecs"])
def test_a_malformed_duration_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SERVER_IDLE_TIMEOUT", value)
    with pytest.raises(ValidationError, match="SERVER_IDLE_TIMEOUT"):
        ProxySettings()
