"""PII detection: entities of seed 003's language groups found in text, each validated by
its checksum where it has one (a number that fails its check is not PII). The `pii`
plugin's runner (``policy.runners.pii``) masks, redacts or blocks what this finds.

API (stable; the detectors behind it grow): ``find(text, entities=None)`` → the matches
in order, non-overlapping; ``ENTITIES``: every supported entity id with its group."""

from trustgate_core.pii.detect import ENTITIES, find
from trustgate_core.pii.model import Entity, Match

__all__ = ["ENTITIES", "Entity", "Match", "find"]
