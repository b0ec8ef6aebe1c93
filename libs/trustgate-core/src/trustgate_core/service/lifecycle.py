"""What every plane's runtime is: ``start``, ``stop``, and ``async with`` around them."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Lifecycle:
    """``async with Runtime(settings) as rt``: ``start()`` on entry, ``stop()`` on exit."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
