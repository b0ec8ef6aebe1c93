"""Subjects and streams of the bus: the one place they are spelled (architecture §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from trustgate_core.models.base import EntityKind

CONFIG_PREFIX = "trustgate.config"
CONFIG_SUBJECTS = f"{CONFIG_PREFIX}.>"
REQUESTS_PREFIX = "trustgate.requests"
REQUESTS_SUBJECTS = f"{REQUESTS_PREFIX}.>"
AUDIT_PREFIX = "trustgate.audit"
AUDIT_SUBJECTS = f"{AUDIT_PREFIX}.>"
# the audit chain's head (not under AUDIT_PREFIX: a subject of its own stream)
AUDIT_HEAD_SUBJECT = "trustgate.audit_head"
CACHE_LOOKUP_SUBJECT = "trustgate.cache.lookup"
CACHE_STORE_SUBJECT = "trustgate.cache.store"
# a policy's entries dropped on every policy-cache replica (the admin's purge)
CACHE_PURGE_SUBJECT = "trustgate.cache.purge"
# the queue group the policy-cache replicas answer lookups and stores in
CACHE_QUEUE_GROUP = "policy-cache"


def config_subject(kind: EntityKind | str, gateway_id: UUID | str, entity_id: UUID | str) -> str:
    return f"{CONFIG_PREFIX}.{EntityKind(kind).value}.{gateway_id}.{entity_id}"


def parse_config_subject(subject: str) -> tuple[EntityKind, str, str]:
    parts = subject.split(".")
    if len(parts) != 5 or ".".join(parts[:2]) != CONFIG_PREFIX:
        raise ValueError(f"not a config subject: {subject!r}")
    return EntityKind(parts[2]), parts[3], parts[4]


def audit_subject(gateway_id: UUID | str) -> str:
    return f"{AUDIT_PREFIX}.{gateway_id}"


def requests_subject(gateway_id: UUID | str) -> str:
    return f"{REQUESTS_PREFIX}.{gateway_id}"


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream as the contract defines it; ``bus.ensure_streams`` applies it."""

    name: str
    subjects: list[str]
    description: str = ""
    max_msgs_per_subject: int = -1
    max_age_seconds: float | None = None
    max_bytes: int | None = None
    duplicate_window_seconds: float = 120.0
    extra: dict[str, object] = field(default_factory=dict)


CONFIG_STREAM = StreamSpec(
    name="TRUSTGATE_CONFIG",
    subjects=[CONFIG_SUBJECTS],
    description="Latest state of every configuration entity (one message per subject).",
    max_msgs_per_subject=1,
)


def requests_stream(max_age_seconds: float = 24 * 3600, max_bytes: int = 1 << 30) -> StreamSpec:
    return StreamSpec(
        name="TRUSTGATE_REQUESTS",
        subjects=[REQUESTS_SUBJECTS],
        description="One event per proxied request, for telemetry and usage accounting.",
        max_age_seconds=max_age_seconds,
        max_bytes=max_bytes,
    )


AUDIT_STREAM = StreamSpec(
    name="TRUSTGATE_AUDIT",
    subjects=[AUDIT_SUBJECTS],
    description="One event per admin change: who, what (kind, id, operation, revision), when.",
)


def audit_head_stream(
    max_age_seconds: float = 400 * 86400, duplicate_window_seconds: float = 86400
) -> StreamSpec:
    """The audit chain's heads, kept by age (a year and more of anchors); the duplicate
    window (its ``Nats-Msg-Id`` is the seq) spans a day, so the replicas publishing the
    same head, or one publishing it again after a restart, store it once."""
    return StreamSpec(
        name="TRUSTGATE_AUDIT_HEAD",
        subjects=[AUDIT_HEAD_SUBJECT],
        description="The audit chain's head (seq, hash) whenever it moved: outside anchors.",
        max_age_seconds=max_age_seconds,
        duplicate_window_seconds=duplicate_window_seconds,
    )
