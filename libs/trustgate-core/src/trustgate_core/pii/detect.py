"""Running the detectors fast and resolving their overlaps.

Speed: a 2 KB prompt must be scanned in well under 2 ms, and forty patterns each walking
the whole text cost more than that in Python's ``re``. Nearly every candidate holds a
digit, so one pass finds the text's digit runs and the numeric patterns scan only short
windows around the runs holding enough digits for them (prose, and short numbers such as
ports, counts and versions, are never walked by an ID pattern); e-mail addresses are looked
for around each ``@``; a weak pattern is skipped when none of its keywords occurs in the
text; and a candidate inside a match already found is not validated again (it could not
win), which spares the phone-number parser most of its work.

Overlaps: each character belongs to at most one match; the longer match wins, on equal
length the family registered first (the more specific: IDs before phones)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator

from trustgate_core.pii import asia, english, europe, mena, phones, universal
from trustgate_core.pii.base import Detector
from trustgate_core.pii.model import Entity, Match

DETECTORS: tuple[Detector, ...] = (
    *asia.BEFORE_CARDS,
    *universal.DETECTORS,
    *english.DETECTORS,
    *europe.DETECTORS,
    *asia.DETECTORS,
    *mena.DETECTORS,
    *phones.DETECTORS,
)

ENTITIES: dict[str, Entity] = {e.id: e for d in DETECTORS for e in d.entities}

# A run of at least two digits with its separators (a lone digit is no detector's); a
# window reaches this far before it (the letters and signs an entity may start with:
# ``RCCMNL83…``, ``GB82 WEST…``, ``+44``, ``(415``, ``〒 ``, ``AB 12``) and after it
# (``…002X``, ``… ZZ4``, ``131052A308T``). No entity ends on a window's last character,
# so the window's end never passes for a word edge.
_DIGIT_RUN = re.compile(r"\d[ \-./()]*\d[\d \-./()]*")
_BEFORE = 12
_AFTER = 6
_SEPARATORS = str.maketrans("", "", " -./()")
# An e-mail address's longest local part and domain around its ``@``.
_LOCAL = 64
_DOMAIN = 255


def find(text: str, entities: Collection[str] | None = None) -> list[Match]:
    """The entities in ``text`` (only those of ``entities`` when given), in order, not
    overlapping (the longer match wins). An unknown entity id is a ``ValueError``."""
    wanted = None if entities is None else frozenset(entities)
    if wanted is not None and not wanted <= ENTITIES.keys():
        unknown = ", ".join(sorted(wanted - ENTITIES.keys()))
        raise ValueError(f"unknown PII entities: {unknown}")
    lowered = text.lower()
    runs: list[tuple[int, int, int]] | None = None
    windows: dict[tuple[str, int], list[tuple[int, int]]] = {}
    found: list[tuple[int, Match]] = []
    for rank, detector in enumerate(DETECTORS):
        if (wanted is not None and wanted.isdisjoint(detector.ids)) or (
            detector.context is not None and not detector.context.present(lowered)
        ):
            continue
        key = (detector.anchor, detector.min_digits)
        if key not in windows:
            if detector.anchor == "runs" and runs is None:
                runs = _digit_spans(text)
            windows[key] = _windows(text, detector.anchor, detector.min_digits, runs or [])
        search = detector.pattern.search
        value_group = "v" if "v" in detector.pattern.groupindex else 0
        for pos, endpos in windows[key]:
            while (m := search(text, pos, endpos)) is not None:
                start, end = m.span(value_group)
                # A rejected candidate may hide a valid one starting inside it
                # (``12 4111 1111 1111 1111``): the search resumes just after its start.
                pos = m.start() + 1
                if any(f.start <= start and end <= f.end for _, f in found) or (
                    detector.context is not None and not detector.context.near(text, start)
                ):
                    continue  # inside a match already found, or without its keyword
                value = text[start:end]
                entity = detector.classify(value)
                if entity is not None and (wanted is None or entity in wanted):
                    found.append((rank, Match(entity, start, end, value)))
                    pos = max(pos, m.end())
    return _without_overlaps(found)


def _windows(
    text: str, anchor: str, min_digits: int, runs: list[tuple[int, int, int]]
) -> list[tuple[int, int]]:
    """Where a detector scans, in order, windows merged where they touch: around the
    ``runs`` holding at least ``min_digits`` digits, around each ``anchor``, or the
    whole text."""
    if not anchor:
        return [(0, len(text))]
    if anchor == "runs":
        spans: Iterable[tuple[int, int]] = ((s, e) for s, e, d in runs if d >= min_digits)
    else:
        spans = _anchor_spans(text, anchor)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _digit_spans(text: str) -> list[tuple[int, int, int]]:
    size = len(text)
    return [
        (max(0, r.start() - _BEFORE), min(size, r.end() + _AFTER), len(r[0].translate(_SEPARATORS)))
        for r in _DIGIT_RUN.finditer(text)
    ]


def _anchor_spans(text: str, anchor: str) -> Iterator[tuple[int, int]]:
    at = text.find(anchor)
    while at >= 0:
        yield max(0, at - _LOCAL), min(len(text), at + _DOMAIN)
        at = text.find(anchor, at + 1)


def _without_overlaps(found: list[tuple[int, Match]]) -> list[Match]:
    if len(found) < 2:
        return [m for _, m in found]
    found.sort(key=lambda f: (f[1].start - f[1].end, f[0], f[1].start))
    taken: list[Match] = []
    for _, m in found:
        if all(m.end <= t.start or m.start >= t.end for t in taken):
            taken.append(m)
    taken.sort(key=lambda m: m.start)
    return taken
