"""A JSON-lines file sink: exported events for a node without Kafka (``trustgate run``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from trustgate_telemetry.ports import Record


class FileSink:
    """JSON lines to a file (or the log with ``-``): for a node without Kafka."""

    name = "file"

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    @property
    def ready(self) -> bool:
        return self._fh is not None

    async def start(self) -> None:
        if self._fh is None:
            self._fh = self._open()

    def _open(self) -> IO[str]:
        if self.path == "-":
            return sys.stdout
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        return open(self.path, "a", encoding="utf-8")

    async def send_batch(self, records: Sequence[Record]) -> list[BaseException | None]:
        if self._fh is None:
            await self.start()
        fh = self._fh
        assert fh is not None
        try:
            fh.write("".join(r.value.decode("utf-8") + "\n" for r in records))
            fh.flush()
        except OSError as exc:
            return [exc] * len(records)
        return [None] * len(records)

    async def stop(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None and fh is not sys.stdout:
            fh.close()
