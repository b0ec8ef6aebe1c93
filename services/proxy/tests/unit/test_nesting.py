"""The depth bound counts as a reader would: the top-level object is depth 1, strings full
of brackets do not count, and the byte pre-check never hides a deep document."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from trustgate_proxy.domain.nesting import nested_deeper_than


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


documents = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='[]{}"\\ab'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=40,
).map(lambda value: {"v": value})


@settings(derandomize=True, database=None, max_examples=300)
@given(doc=documents, limit=st.integers(min_value=1, max_value=12))
def test_a_document_is_deeper_than_the_limit_exactly_when_it_nests_past_it(
    doc: dict[str, Any], limit: int
) -> None:
    body = orjson.dumps(doc)
    assert nested_deeper_than(body, orjson.loads(body), limit) == (depth(doc) > limit)


def test_brackets_inside_strings_are_not_nesting() -> None:
    body = orjson.dumps({"text": "[" * 500 + "{" * 500})
    assert not nested_deeper_than(body, orjson.loads(body), 2)
