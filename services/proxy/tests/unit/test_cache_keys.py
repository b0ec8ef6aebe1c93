"""The cache keys the proxy computes: the same request in Chat, Messages or Responses
format has the same keys; each parameter that changes the answer changes the exact key;
the filter key ignores the conversation's text."""

from __future__ import annotations

from typing import Any

import pytest

from trustgate_core.cache.keys import exact_key, filter_key
from trustgate_proxy.domain.formats import INBOUND
from trustgate_proxy.services.cache import canonical_request, conversation_text

CHAT: dict[str, Any] = {
    "model": "m",
    "max_tokens": 64,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ],
}
MESSAGES: dict[str, Any] = {
    "model": "m",
    "max_tokens": 64,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Capital of France?"}],
}
RESPONSES: dict[str, Any] = {
    "model": "m",
    "max_output_tokens": 64,
    "instructions": "Be brief.",
    "input": [{"role": "user", "content": "Capital of France?"}],
}


def keys(fmt: str, doc: dict[str, Any]) -> tuple[str, str]:
    canonical = canonical_request(INBOUND[fmt].decode_request(doc), doc)  # type: ignore[index]
    return exact_key(canonical), filter_key(canonical)


def test_one_request_has_the_same_keys_in_every_format() -> None:
    chat = keys("openai_chat", CHAT)
    assert keys("anthropic", MESSAGES) == chat
    assert keys("openai_responses", RESPONSES) == chat
    assert keys("openai_chat", {**CHAT, "stream": True}) == chat  # the mode is not the answer


CHANGES: list[tuple[str, Any]] = [
    ("model", "m2"),
    ("temperature", 0.2),
    ("top_p", 0.9),
    ("max_tokens", 65),
    ("stop", ["\n"]),
    ("seed", 1),
    ("n", 1),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", "none"),
    ("response_format", {"type": "json_object"}),
    ("logprobs", True),
    ("messages", [{"role": "system", "content": "Be long."}, CHAT["messages"][1]]),
]


@pytest.mark.parametrize(("field", "value"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_parameter_changes_the_exact_key(field: str, value: Any) -> None:
    assert keys("openai_chat", {**CHAT, field: value})[0] != keys("openai_chat", CHAT)[0]


def test_json_key_order_does_not_matter() -> None:
    reordered = dict(reversed(list(CHAT.items())))
    assert keys("openai_chat", reordered) == keys("openai_chat", CHAT)


def test_the_filter_key_and_the_embedded_text() -> None:
    other = {**CHAT, "messages": [CHAT["messages"][0], {"role": "user", "content": "Hi"}]}
    assert keys("openai_chat", other)[1] == keys("openai_chat", CHAT)[1]
    assert keys("openai_chat", {**CHAT, "temperature": 1})[1] != keys("openai_chat", CHAT)[1]
    request = INBOUND["openai_chat"].decode_request(CHAT)
    assert conversation_text(request) == "Be brief.\nuser: Capital of France?"
