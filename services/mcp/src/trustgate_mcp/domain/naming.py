"""The names a consumer's client sees for its servers' tools and prompts.

Model providers accept a tool name only if it matches ``^[a-zA-Z0-9_-]{1,64}$``, and a
name must not change when nothing it depends on changed, so naming is a pure function of
the wanted items in order. A name is kept as the server gave it unless it collides; the
colliding ones climb a ladder (``{server}_{name}``, then ``{server}_{id8}_{name}``, then a
numeric suffix) until each is unique. ``always_prefix`` starts every name on the second
rung, so adding a server renames nothing (peers' gateways rename tools then).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

MAX_LENGTH = 64
_KEPT = 55  # characters kept of a long name: 55 + "_" + 8 hex = 64
_INVALID = re.compile(r"[^a-zA-Z0-9_-]")


def exposed(text: str) -> str:
    """``text`` as a valid name: other characters become ``_``; a name longer than 64 is
    its first 55 characters, ``_`` and 8 hex of the sha256 of the whole text, so two long
    names that differ only at the end stay apart, the same way every time."""
    name = _INVALID.sub("_", text) or "_"
    if len(name) <= MAX_LENGTH:
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{name[:_KEPT]}_{digest}"


@dataclass(frozen=True, slots=True)
class Wanted:
    """One tool or prompt to name: its server (registry name and id), its name there, and
    the toolkit's ``expose_as`` for it if any."""

    server: str
    server_id: UUID
    name: str
    expose_as: str | None = None


def _own(item: Wanted) -> str:
    return exposed(item.name)


def _prefixed(item: Wanted) -> str:
    return exposed(f"{exposed(item.server)}_{item.name}")


def _with_id(item: Wanted) -> str:
    return exposed(f"{exposed(item.server)}_{item.server_id.hex[:8]}_{item.name}")


_LADDER: tuple[Callable[[Wanted], str], ...] = (_own, _prefixed, _with_id)


def _numbered(base: str, taken: set[str]) -> str:
    """``base``, or the first of ``base_2``, ``base_3``… not taken (cut to stay ≤ 64)."""
    name, n = base, 1
    while name in taken:
        n += 1
        suffix = f"_{n}"
        name = base[: MAX_LENGTH - len(suffix)] + suffix
    return name


def assign(wanted: Sequence[Wanted], *, always_prefix: bool = False) -> list[str]:
    """One unique valid name per wanted item, in the same order.

    ``expose_as`` names are claimed first (a duplicate one gets a numeric suffix); every
    other name avoids them. Then each rung of the ladder is tried for the items still
    unnamed: a candidate that no other unnamed item shares and nobody holds is taken; the
    others (all of them, not only the later ones) go to the next rung. The last rung ends
    with a numeric suffix in order, so every item gets a name.
    """
    names: list[str] = [""] * len(wanted)
    taken: set[str] = set()
    pending: list[int] = []
    for i, item in enumerate(wanted):
        if item.expose_as is None:
            pending.append(i)
            continue
        names[i] = _numbered(exposed(item.expose_as), taken)
        taken.add(names[i])
    for rung in _LADDER[1 if always_prefix else 0 :]:
        candidates = {i: rung(wanted[i]) for i in pending}
        counts = Counter(candidates.values())
        unnamed: list[int] = []
        for i in pending:
            candidate = candidates[i]
            if counts[candidate] == 1 and candidate not in taken:
                names[i] = candidate
                taken.add(candidate)
            else:
                unnamed.append(i)
        pending = unnamed
    for i in pending:
        names[i] = _numbered(_with_id(wanted[i]), taken)
        taken.add(names[i])
    return names
