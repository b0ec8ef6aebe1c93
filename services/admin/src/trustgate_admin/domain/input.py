"""What any request may carry, whatever the field: checks that keep bad input a 4xx.

Postgres refuses NUL characters in text and JSONB, UTF-8 has no lone surrogates, the bus
encoder (orjson) refuses integers beyond 64 bits and JSON nested deeper than 254 levels,
and JSONB has no NaN. A request carrying any of these is refused naming where, before it
reaches a use case, instead of failing deep inside one with a 500.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

#: The deepest JSON a body may nest (objects and arrays); far beyond any real config.
MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None."""
    found = _UNSAFE_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "NUL characters are not allowed"
    return "invalid Unicode (a lone surrogate)"


def json_problem(doc: Any, where: str = "") -> str | None:
    """The first reason ``doc`` (parsed JSON) cannot be accepted, prefixed by its location
    (``metadata.team.1: ...``), or None."""
    for path, depth, value in _walk(doc, where):
        problem = _value_problem(value, depth)
        if problem is not None:
            return f"{path}: {problem}" if path else problem
    return None


def _value_problem(value: Any, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"JSON nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite"
    if isinstance(value, int | float) and not INT64_MIN <= value <= INT64_MAX:
        # a float too: JSONB keeps 1e20 as the exact 100000000000000000000, read back as
        # an integer the bus encoder refuses, so every later change of the entity failed
        return "numbers must fit in a signed 64-bit range"
    return None


def _walk(doc: Any, where: str) -> Iterator[tuple[str, int, Any]]:
    """Every value and object key with its dotted path and depth (iterative: no recursion
    limit whatever the nesting)."""
    stack: list[tuple[str, int, Any]] = [(where, 0, doc)]
    while stack:
        path, depth, value = stack.pop()
        yield path, depth, value
        if depth > MAX_DEPTH:
            return
        if isinstance(value, dict):
            for key, child in value.items():
                yield path, depth + 1, key  # a bad key is named by its object's path
                stack.append((f"{path}.{key}" if path else str(key), depth + 1, child))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                stack.append((f"{path}.{index}" if path else str(index), depth + 1, child))
