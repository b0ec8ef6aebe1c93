"""List queries: the reference's paging, sorting, search and filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, asc, desc, func
from sqlalchemy.sql.elements import ColumnElement

from trustgate_core.errors import InvalidFilter, InvalidPagination, InvalidSort

MAX_SIZE = 200
DEFAULT_SIZE = 20


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


def _positive_int(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidPagination(f"{name} must be an integer") from exc
    if value < 1:
        raise InvalidPagination(f"{name} must be >= 1")
    return value


def parse_list_query(
    params: Mapping[str, str],
    *,
    sortable: Sequence[str] = ("name", "created_at", "updated_at"),
    filters: Sequence[str] = (),
) -> ListQuery:
    q = ListQuery(
        page=_positive_int(params, "page", 1),
        size=min(_positive_int(params, "size", DEFAULT_SIZE), MAX_SIZE),
    )
    sort, order = params.get("sort"), params.get("order")
    if order is not None and not sort:
        raise InvalidSort("order requires sort")
    if sort:
        if sort not in sortable:
            raise InvalidSort(f"sort must be one of: {', '.join(sortable)}")
        q.sort = sort
        q.order = (order or "asc").lower()
        if q.order not in ("asc", "desc"):
            raise InvalidSort("order must be asc or desc")
    q.search = params.get("search") or params.get("name") or None
    for name in filters:
        if name in params:
            q.filters[name] = params[name]
    return q


def bool_filter(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidFilter(f"{name} must be true or false")


def apply_sort(
    stmt: Select[Any], q: ListQuery, columns: Mapping[str, ColumnElement[Any]]
) -> Select[Any]:
    key = columns[q.sort] if q.sort else columns["created_at"]
    primary = desc(key) if q.sort and q.order == "desc" else asc(key)
    return stmt.order_by(primary, asc(columns["id"]))


def count_of(stmt: Select[Any]) -> Select[Any]:
    return stmt.with_only_columns(func.count()).order_by(None)


def envelope(items: list[Any], q: ListQuery, total: int) -> dict[str, Any]:
    return {"items": items, "page": q.page, "size": q.size, "total": total}
