"""A consumer's toolkit: which of its servers' tools, prompts and resources it exposes.

Entries are ``{registry_id, tool | prompt | resource, expose_as?}`` as the admin stored
them. No toolkit (None or empty) exposes everything. Otherwise only what an entry names is
exposed, so a registry with no entry of a kind exposes nothing of that kind. ``tool`` and
``prompt`` are upstream names; a trailing ``*`` makes a prefix (``search*``) and ``*``
alone takes all of them. ``resource`` is a URI or a URI prefix ending in ``*``; it applies
to resources' ``uri`` and templates' ``uriTemplate``. ``expose_as`` renames the one tool or
prompt an exact entry names (on a wildcard entry it is ignored: it cannot name several).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

Kind = Literal["tool", "prompt", "resource"]
_KINDS: tuple[Kind, ...] = ("tool", "prompt", "resource")


@dataclass(frozen=True, slots=True)
class Entry:
    registry_id: UUID
    kind: Kind
    pattern: str
    expose_as: str | None

    def matches(self, name: str) -> bool:
        if self.pattern.endswith("*"):
            return name.startswith(self.pattern[:-1])
        return name == self.pattern


def _entry(raw: Any) -> Entry | None:
    """A stored entry, or None when it cannot be one (the admin validates entries; a
    malformed one exposes nothing rather than failing every call)."""
    if not isinstance(raw, dict):
        return None
    try:
        registry_id = UUID(str(raw.get("registry_id")))
    except ValueError:
        return None
    kinds = [kind for kind in _KINDS if isinstance(raw.get(kind), str)]
    if len(kinds) != 1:
        return None
    expose_as = raw.get("expose_as")
    return Entry(
        registry_id,
        kinds[0],
        raw[kinds[0]],
        expose_as if isinstance(expose_as, str) and expose_as else None,
    )


@dataclass(frozen=True, slots=True)
class Selected:
    """An item the toolkit exposes, and the name it asks for (None: the naming rules)."""

    expose_as: str | None = None


_EVERYTHING = Selected()


class Toolkit:
    """The consumer's toolkit, parsed once per catalog build."""

    __slots__ = ("_entries",)

    def __init__(self, raw: Sequence[Any] | None) -> None:
        # None: no toolkit, everything is exposed
        entries = [entry for entry in map(_entry, raw or ()) if entry is not None]
        self._entries: tuple[Entry, ...] | None = tuple(entries) if raw else None

    def select(self, registry_id: UUID, kind: Kind, name: str) -> Selected | None:
        """Whether ``name`` (an upstream tool or prompt name, a resource URI or a template's
        ``uriTemplate``) of that registry is exposed, and under which name. An exact entry
        wins over a wildcard for ``expose_as``."""
        if self._entries is None:
            return _EVERYTHING
        found: Selected | None = None
        for entry in self._entries:
            if entry.registry_id != registry_id or entry.kind != kind:
                continue
            if not entry.matches(name):
                continue
            if entry.pattern == name:
                return Selected(entry.expose_as if kind != "resource" else None)
            found = _EVERYTHING
        return found
