"""One rule says which fields of a free-form document are secrets, for sealing and masking
alike; a URL carrying credentials is found by its path, never by its value."""

from __future__ import annotations

import pytest

from trustgate_admin.domain.credentials import refuse_url_credentials
from trustgate_core.crypto import SecretBox, find_url_credentials, is_secret_key, mask_fields
from trustgate_core.errors import ValidationFailed
from trustgate_core.settings import DEV_SECRET_KEY

SECRET_NAMES = [
    "token",
    "access_token",
    "X-Auth-Token",
    "client_secret",
    "Password",
    "db_password",
    "Authorization",
    "proxy-authorization",
    "api_key",
    "api-key",
    "apiKey",
    "X-API-KEY",
    "x_api_key",
    "Cookie",
    "set-cookie",
    "credential",
    "gcp_credentials",
    "private_key",
    "Private-Key",
]
PLAIN_NAMES = ["token_url", "max_tokens", "base_url", "api", "version", "key_file", "model"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_names_that_say_secret_are_secret_in_any_case_and_spelling(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_names_that_merely_mention_a_word_are_not(name: str) -> None:
    assert not is_secret_key(name)


def test_sealing_and_masking_agree_on_the_same_fields() -> None:
    box = SecretBox(DEV_SECRET_KEY)
    doc = {
        "base_url": "https://llm.example.com/v1",
        "X-Api-Key": "opt-secret-0002-efgh",
        "nested": {"Session-Token": "tok-0003-ijkl", "max_tokens": 512},
        "headers": {"anthropic-beta": "tools-2024"},
        "model_mapping": {"token": "gpt-4o-mini"},
    }
    sealed = box.seal_fields(doc)
    for value in (
        sealed["X-Api-Key"],
        sealed["nested"]["Session-Token"],
        sealed["headers"]["anthropic-beta"],
    ):
        assert value.startswith("tgs1:")
    assert sealed["nested"]["max_tokens"] == 512
    assert box.open_fields(sealed) == doc
    assert mask_fields(box, sealed) == {
        "base_url": "https://llm.example.com/v1",
        "X-Api-Key": "***efgh",
        "nested": {"Session-Token": "***ijkl", "max_tokens": 512},
        "headers": {"anthropic-beta": "***2024"},
        "model_mapping": {"token": "gpt-4o-mini"},
    }


def test_a_url_with_credentials_is_named_by_its_path_not_its_value() -> None:
    doc = {"ok": "https://h/path@x", "list": [{"url": " http://me:pw-0004@h:1/v1 "}]}
    assert find_url_credentials(doc) == "list[0].url"
    assert find_url_credentials({"base_url": "https://user@h"}) == "base_url"
    assert find_url_credentials({"base_url": "https://h?who=a@b"}) is None
    with pytest.raises(ValidationFailed) as caught:
        refuse_url_credentials("provider_options", doc)
    assert "provider_options.list[0].url" in caught.value.message
    assert "pw-0004" not in caught.value.message
