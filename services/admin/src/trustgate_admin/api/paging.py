"""List queries: the reference's paging, sorting, search and filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trustgate_admin.domain.listing import DEFAULT_SIZE, MAX_SIZE, ListQuery
from trustgate_core.errors import InvalidPagination, InvalidSort


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


def envelope(items: list[Any], q: ListQuery, total: int) -> dict[str, Any]:
    return {"items": items, "page": q.page, "size": q.size, "total": total}
