"""Running the detectors: every selected pattern family scans the text once, candidates
that fail validation (or lack a required keyword) are dropped, and overlaps are resolved
so that each character belongs to at most one match: the longer match wins, on equal
length the family registered first (the more specific one: IDs before phones)."""

from __future__ import annotations

import re
from collections.abc import Collection

from trustgate_core.pii import asia, english, europe, mena, phones, universal
from trustgate_core.pii.base import CONTEXT_WINDOW, Detector
from trustgate_core.pii.model import Entity, Match

DETECTORS: tuple[Detector, ...] = (
    *universal.DETECTORS,
    *english.DETECTORS,
    *europe.DETECTORS,
    *asia.DETECTORS,
    *mena.DETECTORS,
    *phones.DETECTORS,
)

ENTITIES: dict[str, Entity] = {e.id: e for d in DETECTORS for e in d.entities}

_DIGIT = re.compile(r"\d")


def find(text: str, entities: Collection[str] | None = None) -> list[Match]:
    """The entities in ``text`` (only those of ``entities`` when given), in order, not
    overlapping (the longer match wins). An unknown entity id is a ``ValueError``."""
    wanted = None if entities is None else frozenset(entities)
    if wanted is not None and not wanted <= ENTITIES.keys():
        unknown = ", ".join(sorted(wanted - ENTITIES.keys()))
        raise ValueError(f"unknown PII entities: {unknown}")
    has_digit = _DIGIT.search(text) is not None
    found: list[tuple[int, int, Match]] = []
    for rank, detector in enumerate(DETECTORS):
        if (wanted is not None and wanted.isdisjoint(detector.ids)) or (
            detector.digits and not has_digit
        ):
            continue
        found.extend((rank, m.end - m.start, m) for m in _scan(detector, text, wanted))
    return _without_overlaps(found)


def _scan(detector: Detector, text: str, wanted: frozenset[str] | None) -> list[Match]:
    matches: list[Match] = []
    for m in detector.pattern.finditer(text):
        start, end = m.span("v") if "v" in detector.pattern.groupindex else m.span()
        if detector.context is not None and (
            detector.context.search(text, max(0, start - CONTEXT_WINDOW), start) is None
        ):
            continue
        value = text[start:end]
        entity = detector.classify(value)
        if entity is not None and (wanted is None or entity in wanted):
            matches.append(Match(entity, start, end, value))
    return matches


def _without_overlaps(found: list[tuple[int, int, Match]]) -> list[Match]:
    if len(found) < 2:
        return [m for _, _, m in found]
    found.sort(key=lambda f: (-f[1], f[0], f[2].start))
    taken: list[Match] = []
    for _, _, m in found:
        if all(m.end <= t.start or m.start >= t.end for t in taken):
            taken.append(m)
    taken.sort(key=lambda m: m.start)
    return taken
