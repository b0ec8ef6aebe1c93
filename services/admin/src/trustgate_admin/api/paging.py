"""List queries: the reference's paging, sorting, search and filters, parsed from the
query string and documented in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trustgate_admin.domain.listing import DEFAULT_SIZE, MAX_PAGE, MAX_SIZE, ListQuery
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


def _page(params: Mapping[str, str]) -> int:
    """A size above the maximum is clamped; a page beyond ``MAX_PAGE`` is refused (no list
    has that many pages, and its offset would overflow the database's integers)."""
    page = _positive_int(params, "page", 1)
    if page > MAX_PAGE:
        raise InvalidPagination(f"page must be <= {MAX_PAGE}")
    return page


@dataclass(frozen=True)
class Listing:
    """How one list endpoint may be queried: its sortable fields and filters."""

    sortable: tuple[str, ...] = ("name", "created_at", "updated_at")
    filters: tuple[str, ...] = ()

    def parse(self, params: Mapping[str, str]) -> ListQuery:
        q = ListQuery(
            page=_page(params), size=min(_positive_int(params, "size", DEFAULT_SIZE), MAX_SIZE)
        )
        sort, order = params.get("sort"), params.get("order")
        if order is not None and not sort:
            raise InvalidSort("order requires sort")
        if sort:
            if sort not in self.sortable:
                raise InvalidSort(f"sort must be one of: {', '.join(self.sortable)}")
            q.sort = sort
            q.order = (order or "asc").lower()
            if q.order not in ("asc", "desc"):
                raise InvalidSort("order must be asc or desc")
        q.search = params.get("search") or params.get("name") or None
        for name in self.filters:
            if name in params:
                q.filters[name] = params[name]
        return q

    def openapi(self) -> dict[str, Any]:
        """The query parameters, for the route's ``openapi_extra``."""
        text: dict[str, Any] = {"type": "string"}
        params = [
            _query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
            _query("size", {"type": "integer", "minimum": 1}, f"clamped to {MAX_SIZE}"),
            _query("sort", {"type": "string", "enum": list(self.sortable)}),
            _query("order", {"type": "string", "enum": ["asc", "desc"]}),
            _query("search", text, "a case-insensitive substring of the name"),
            *(_query(name, text) for name in self.filters),
        ]
        return {"parameters": params}


def _query(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


def envelope(items: list[Any], q: ListQuery, total: int) -> dict[str, Any]:
    return {"items": items, "page": q.page, "size": q.size, "total": total}
