"""The detectors (stub: the PII work fills it in; the API is fixed)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entity:
    """A supported entity: its id (``email``, ``credit_card``, ``us_ssn``, ``de_tax_id``…)
    and its language group (``universal``, ``us``, ``uk``, ``eu``, ``cjk``, ``gcc_mena``)."""

    id: str
    group: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    """``text[start:end]`` is an ``entity`` (its id)."""

    entity: str
    start: int
    end: int
    value: str


ENTITIES: dict[str, Entity] = {}


def find(text: str, entities: Collection[str] | None = None) -> list[Match]:
    """The entities in ``text`` (only those of ``entities`` when given), in order, not
    overlapping (the longer match wins)."""
    return []
