"""A list query: the page, sort, search and filters a use case lists with (parsed from the
request by ``api.paging``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trustgate_core.errors import InvalidFilter

MAX_SIZE = 200
DEFAULT_SIZE = 20
#: The last page a list may ask for: its offset stays far inside Postgres' 64-bit range.
MAX_PAGE = 1_000_000


@dataclass
class ListQuery:
    page: int = 1
    size: int = DEFAULT_SIZE
    sort: str | None = None
    order: str = "asc"
    search: str | None = None
    filters: dict[str, str] = field(default_factory=dict)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


def bool_filter(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidFilter(f"{name} must be true or false")
