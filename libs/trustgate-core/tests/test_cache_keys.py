"""The cache's request keys: every field changes the exact key, nested ones included;
JSON key order never does, nor ``1`` against ``1.0``; the filter key hashes what the
caller left of the request once its text is blanked."""

from __future__ import annotations

from typing import Any

import pytest

from trustgate_core.cache.keys import canonical, exact_key, filter_key

BASE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
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
    ("messages", [{"role": "user", "content": [{"type": "text", "text": "Hello!"}]}]),
    ("messages", [{"role": "user", "name": "bob", "content": [{"type": "text", "text": "Hello"}]}]),
]


@pytest.mark.parametrize(("field", "value"), CHANGES, ids=[str(i) for i in range(len(CHANGES))])
def test_each_field_changes_the_exact_key(field: str, value: Any) -> None:
    assert exact_key({**BASE, field: value}) != exact_key(BASE)


def test_a_parameter_set_differs_from_it_omitted() -> None:
    assert exact_key({**BASE, "temperature": None}) != exact_key(BASE)


def test_key_order_and_number_spelling_do_not_matter() -> None:
    reordered = {k: BASE[k] for k in reversed(list(BASE))}
    nested = {**BASE, "response_format": {"type": "json_schema", "schema": {"b": 1, "a": 2}}}
    nested_reordered = {
        **BASE,
        "response_format": {"schema": {"a": 2, "b": 1}, "type": "json_schema"},
    }
    assert exact_key(reordered) == exact_key(BASE)
    assert exact_key(nested) == exact_key(nested_reordered)
    assert exact_key({**BASE, "temperature": 1}) == exact_key({**BASE, "temperature": 1.0})
    assert exact_key({**BASE, "temperature": 0.5}) != exact_key({**BASE, "temperature": 1})
    assert canonical({"x": 1e300}) == b'{"x":1e+300}'  # past 2**53 a float stays one


def test_the_filter_key_hashes_what_it_is_given() -> None:
    blank = {**BASE, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}
    assert filter_key(blank) == filter_key(dict(reversed(list(blank.items()))))
    assert filter_key({**blank, "temperature": 1.0}) != filter_key(blank)
