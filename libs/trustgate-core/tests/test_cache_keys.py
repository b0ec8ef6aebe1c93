"""The cache's request keys: every parameter that changes the answer changes the exact
key; JSON key order never does; the filter key ignores the text."""

from __future__ import annotations

from typing import Any

import pytest

from trustgate_core.cache.keys import exact_key, filter_key

BASE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "system": ["Be brief."],
    "messages": [{"role": "user", "parts": [{"text": "Hello"}]}],
    "tools": [],
}

CHANGES: list[tuple[str, Any]] = [
    ("model", "gpt-4o"),
    ("temperature", 0.0),
    ("top_p", 0.5),
    ("max_tokens", 10),
    ("stop", ["\n"]),
    ("seed", 7),
    ("n", 2),
    ("tools", [{"name": "weather", "parameters": {"type": "object"}}]),
    ("tool_choice", {"mode": "required"}),
    ("response_format", {"type": "json_object"}),
    ("system", ["Be long."]),
    ("messages", [{"role": "user", "parts": [{"text": "Hello!"}]}]),
]


@pytest.mark.parametrize(("field", "value"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_parameter_changes_the_exact_key(field: str, value: Any) -> None:
    assert exact_key({**BASE, field: value}) != exact_key(BASE)


def test_a_parameter_set_differs_from_it_omitted() -> None:
    assert exact_key({**BASE, "temperature": None}) != exact_key(BASE)


def test_key_order_does_not_matter() -> None:
    reordered = {k: BASE[k] for k in reversed(list(BASE))}
    nested = {**BASE, "response_format": {"type": "json_schema", "schema": {"b": 1, "a": 2}}}
    nested_reordered = {
        **BASE,
        "response_format": {"schema": {"a": 2, "b": 1}, "type": "json_schema"},
    }
    assert exact_key(reordered) == exact_key(BASE)
    assert exact_key(nested) == exact_key(nested_reordered)


def test_the_filter_key_ignores_the_text_only() -> None:
    other_text = {**BASE, "messages": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    assert filter_key(other_text) == filter_key(BASE)
    assert exact_key(other_text) != exact_key(BASE)
    assert filter_key({**BASE, "temperature": 1.0}) != filter_key(BASE)
