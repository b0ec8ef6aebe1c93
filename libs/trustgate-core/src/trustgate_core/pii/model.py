"""The PII API's value types."""

from __future__ import annotations

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
