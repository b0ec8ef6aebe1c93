"""The port exported events go through first (Kafka, or a file on a node without Kafka)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class Record(NamedTuple):
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    topic: str | None = None  # None: the sink's own topic


class ExportSink(Protocol):
    """Where exported events go first; ``send_batch`` returns once every record of the batch
    is durably accepted, with one result per record (None: accepted, else the error)."""

    name: str

    async def start(self) -> None: ...

    async def send_batch(self, records: Sequence[Record]) -> list[BaseException | None]: ...

    async def stop(self) -> None: ...

    @property
    def ready(self) -> bool: ...
