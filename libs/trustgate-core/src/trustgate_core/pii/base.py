"""What a detector is: a precompiled candidate regex, a validator that turns a candidate
into an entity id (or rejects it), and, for weak patterns, the keywords one of which must
appear just before the candidate.

Candidates are cheap to find and wrong often; the validator (a checksum, a date, a
country's numbering plan) is what makes a match PII. A number that fails its check is
not reported."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from trustgate_core.pii.model import Entity

#: Left and right edges of a numeric candidate: no ASCII letter, digit or joiner next to
#: it (CJK or Arabic text may touch it: ``身份证11010519491231002X`` is a candidate), so a
#: run inside a longer number, a UUID, a path or a version string is not one.
NUM_L = r"(?<![0-9A-Za-z_.\-/+])"
NUM_R = r"(?![0-9A-Za-z_\-/]|[.,][0-9])"
#: Edges of an alphanumeric candidate.
WORD_L = r"(?<![0-9A-Za-z_])"
WORD_R = r"(?![0-9A-Za-z_])"

#: How far before a weak candidate its keyword may be (characters).
CONTEXT_WINDOW = 48

Classify = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Keywords:
    """Context keywords (lowercase literals), each starting at a word edge. ``present``
    is a substring test on the lowered text, so a prompt without any of them skips the
    detector for the price of a few ``in``; ``near`` looks just before one candidate."""

    words: tuple[str, ...]
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        alternation = "|".join(re.escape(w) for w in self.words)
        pattern = re.compile(rf"(?<![0-9A-Za-z])(?:{alternation})", re.IGNORECASE)
        object.__setattr__(self, "pattern", pattern)

    def present(self, lowered: str) -> bool:
        return any(w in lowered for w in self.words)

    def near(self, text: str, start: int) -> bool:
        return self.pattern.search(text, max(0, start - CONTEXT_WINDOW), start) is not None


def keywords(*words: str) -> Keywords:
    """Context keywords (case-insensitive literals)."""
    return Keywords(tuple(w.lower() for w in words))


@dataclass(frozen=True, slots=True)
class Detector:
    """One pattern family: ``pattern`` finds candidates (its group ``v`` when present,
    else the whole match, is the value), ``classify`` names the entity of a valid value
    or rejects it, ``context`` (weak patterns) must occur within ``CONTEXT_WINDOW``
    characters before the candidate. ``anchor``: where candidates can be. ``"runs"``
    (the default: a candidate has a run of digits and separators holding at least
    ``min_digits`` (two or more), starts at most 12 characters before it and ends within
    5 after it: ``GB82 WEST 1234…``, ``131052A308T``):
    only windows around such runs are scanned; another string (``"@"``): windows around
    its occurrences; ``""``: the whole text."""

    entities: tuple[Entity, ...]
    pattern: re.Pattern[str]
    classify: Classify
    context: Keywords | None = None
    anchor: str = "runs"
    min_digits: int = 2
    ids: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", frozenset(e.id for e in self.entities))


def checked(
    entity: Entity,
    pattern: str,
    valid: Callable[[str], bool],
    *,
    context: Keywords | None = None,
    min_digits: int = 2,
) -> Detector:
    """A detector of one entity whose candidates (around digit runs) pass ``valid``."""

    def classify(value: str) -> str | None:
        return entity.id if valid(value) else None

    return Detector((entity,), re.compile(pattern), classify, context, min_digits=min_digits)


def structural(_: str) -> bool:
    """The validator of a pattern with no check digit: its shape (and, for a weak one,
    its keyword) is all there is to test."""
    return True


def luhn(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def only_digits(value: str) -> str:
    """``value`` without its separators."""
    return "".join(ch for ch in value if ch.isdigit())
