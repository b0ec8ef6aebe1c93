"""The cache's request keys, computed by the proxy from a format-neutral request (a
mapping of plain JSON values, the same whatever wire format the client spoke).

- ``exact_key``: sha256 of the whole canonical request (model, every parameter that
  changes the answer, the system prompt, the conversation). JSON key order never
  matters: the canonical form sorts keys. A parameter left out and one set to its
  default differ (an omitted ``temperature`` is the provider's default, not ours).
- ``filter_key``: sha256 of the request without its text (``system`` and ``messages``):
  a semantic match must agree on model, temperature, tools and the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

#: The request's text fields: embedded for the semantic tier, left out of the filter key.
TEXT_FIELDS: Final = frozenset({"system", "messages"})


def canonical(value: Any) -> bytes:
    """``value`` as canonical JSON (sorted keys, no whitespace)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def exact_key(request: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(request))).hexdigest()


def filter_key(request: Mapping[str, Any]) -> str:
    params = {k: v for k, v in request.items() if k not in TEXT_FIELDS}
    return hashlib.sha256(canonical(params)).hexdigest()
