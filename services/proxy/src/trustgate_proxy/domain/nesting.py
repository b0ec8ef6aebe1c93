"""How deeply a request's JSON nests, bounded before anything re-encodes it.

orjson reads up to 1024 levels but writes at most 254, so a body nested between the two
would parse and then fail wherever the proxy re-serialises it (a model mapping, an
injected ``stream_options``, a translation). The pipeline refuses a body deeper than its
limit, which it keeps well under 254 so that a translation's few extra levels fit too.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 128  # real requests (tool schemas included) nest a few dozen levels at most


def nested_deeper_than(body: bytes, doc: Any, limit: int) -> bool:
    """Whether ``doc`` (parsed from ``body`` by orjson) has containers more than ``limit``
    deep (the top-level object is depth 1). A body with no more than ``limit`` brackets
    cannot be, which a byte count tells without walking the document (most requests stop
    there); the walk visits containers' children only and stops at the limit."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    return _deeper(doc, limit - 1)


def _deeper(node: Any, room: int) -> bool:
    """Whether a container nests below ``node`` more than ``room`` levels (recursion is
    bounded by the limit; ``type() is`` is exact for what orjson builds, and fastest)."""
    for child in node.values() if type(node) is dict else node:
        kind = type(child)
        if (kind is dict or kind is list) and (room == 0 or _deeper(child, room - 1)):
            return True
    return False
