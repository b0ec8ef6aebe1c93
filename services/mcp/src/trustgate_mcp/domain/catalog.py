"""What one consumer's client sees: its servers' tools, resources, templates and prompts
merged into one catalog, and where each exposed name goes.

Pure: built from the lists the upstreams returned (``ServerLists``), so the same inputs
give the same catalog, names and order (the consumer's registry order, then each server's
own order). Tools and prompts are named by ``naming`` (each kind on its own), after the
toolkit chose them; ``allowed_tool`` (the consumer's tool allow-list) then removes what the
consumer may not call, so ``tools/list`` shows only callable tools. Resources and templates
keep their URIs: a URI (or ``uriTemplate``) offered by two servers goes to the first of them
in the consumer's registry order, and the others' copy is not listed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from trustgate_core.models import Consumer, Registry
from trustgate_mcp.domain import naming
from trustgate_mcp.domain.toolkit import Kind, Toolkit


@dataclass(frozen=True, slots=True)
class Route:
    """Where an exposed name goes: the server, and the name there (for a resource: the URI
    asked for)."""

    registry: Registry
    upstream_name: str


@dataclass(frozen=True)
class ServerLists:
    """One server's four lists, as its upstream returned them."""

    registry: Registry
    tools: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    resource_templates: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)


# RFC 6570 expressions: level 1 ``{var}`` is one path segment; the operators of the higher
# levels as loosely as they may expand
_EXPRESSION = re.compile(r"\{([+#./;?&]?)[^}]*\}")
_OPERATOR_PATTERN = {
    "": r"[^/?#]+",
    "+": r".+",
    "#": r"(?:#.*)?",
    ".": r"(?:\.[^/?#]*)*",
    "/": r"(?:/[^/?#]*)*",
    ";": r"(?:;[^/?#]*)*",
    "?": r"(?:\?[^#]*)?",
    "&": r"(?:&[^#]*)?",
}


def template_pattern(uri_template: str) -> re.Pattern[str]:
    """The URIs a template expands to: literal parts as they are, each expression as its
    operator allows (``{city}`` is one segment without ``/``)."""
    parts: list[str] = []
    end = 0
    for match in _EXPRESSION.finditer(uri_template):
        parts.append(re.escape(uri_template[end : match.start()]))
        parts.append(_OPERATOR_PATTERN[match.group(1)])
        end = match.end()
    parts.append(re.escape(uri_template[end:]))
    return re.compile("".join(parts))


@dataclass(frozen=True)
class Catalog:
    tools: list[dict[str, Any]]
    resources: list[dict[str, Any]]
    resource_templates: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    skipped: tuple[UUID, ...] = ()
    tool_routes: dict[str, Route] = field(default_factory=dict, repr=False)
    prompt_routes: dict[str, Route] = field(default_factory=dict, repr=False)
    resource_routes: dict[str, Route] = field(default_factory=dict, repr=False)
    template_routes: tuple[tuple[re.Pattern[str], Registry], ...] = field(default=(), repr=False)

    def tool(self, name: str) -> Route | None:
        return self.tool_routes.get(name)

    def prompt(self, name: str) -> Route | None:
        return self.prompt_routes.get(name)

    def resource(self, uri: str) -> Route | None:
        """The server of a listed URI, else of the first template (in catalog order) that
        matches it, else None."""
        route = self.resource_routes.get(uri)
        if route is not None:
            return route
        for pattern, registry in self.template_routes:
            if pattern.fullmatch(uri):
                return Route(registry, uri)
        return None

    def only(self, allowed_tool: Callable[[str], bool]) -> Catalog:
        """This catalog without the tools ``allowed_tool`` refuses (by exposed name): they
        are neither listed nor routed."""
        tools = [tool for tool in self.tools if allowed_tool(tool["name"])]
        routes = {tool["name"]: self.tool_routes[tool["name"]] for tool in tools}
        return Catalog(
            tools,
            self.resources,
            self.resource_templates,
            self.prompts,
            self.skipped,
            routes,
            self.prompt_routes,
            self.resource_routes,
            self.template_routes,
        )


def _in_registry_order(consumer: Consumer, lists: Sequence[ServerLists]) -> list[ServerLists]:
    position = {binding.registry_id: i for i, binding in enumerate(consumer.registries)}
    unbound = len(position)
    return sorted(lists, key=lambda server: position.get(server.registry.id, unbound))


def _named(
    servers: Iterable[ServerLists],
    toolkit: Toolkit,
    kind: Kind,
    always_prefix: bool,
) -> tuple[list[dict[str, Any]], dict[str, Route]]:
    """The tools or prompts the toolkit exposes, renamed, and their routes."""
    chosen: list[tuple[Registry, dict[str, Any]]] = []
    wanted: list[naming.Wanted] = []
    for server in servers:
        registry = server.registry
        for item in server.tools if kind == "tool" else server.prompts:
            name = item.get("name")
            if not isinstance(name, str):
                continue
            selected = toolkit.select(registry.id, kind, name)
            if selected is None:
                continue
            chosen.append((registry, item))
            wanted.append(naming.Wanted(registry.name, registry.id, name, selected.expose_as))
    items: list[dict[str, Any]] = []
    routes: dict[str, Route] = {}
    for (registry, item), name in zip(
        chosen, naming.assign(wanted, always_prefix=always_prefix), strict=True
    ):
        items.append(item if item["name"] == name else {**item, "name": name})
        routes[name] = Route(registry, item["name"])
    return items, routes


def build_catalog(
    consumer: Consumer,
    lists: Sequence[ServerLists],
    *,
    allowed_tool: Callable[[str], bool] | None = None,
    skipped: tuple[UUID, ...] = (),
) -> Catalog:
    """The consumer's catalog from its servers' lists (``skipped``: the registries left
    out because their upstream was unreachable, reported as they are). A resource URI or
    ``uriTemplate`` two servers offer goes to the first in the consumer's registry order."""
    servers = _in_registry_order(consumer, lists)
    toolkit = Toolkit(consumer.toolkit)
    tools, tool_routes = _named(servers, toolkit, "tool", consumer.always_prefix)
    prompts, prompt_routes = _named(servers, toolkit, "prompt", consumer.always_prefix)
    resources: list[dict[str, Any]] = []
    resource_routes: dict[str, Route] = {}
    templates: list[dict[str, Any]] = []
    template_routes: list[tuple[re.Pattern[str], Registry]] = []
    seen_templates: set[str] = set()
    for server in servers:
        registry = server.registry
        for resource in server.resources:
            uri = resource.get("uri")
            if not isinstance(uri, str) or uri in resource_routes:
                continue
            if toolkit.select(registry.id, "resource", uri) is None:
                continue
            resources.append(resource)
            resource_routes[uri] = Route(registry, uri)
        for template in server.resource_templates:
            uri_template = template.get("uriTemplate")
            if not isinstance(uri_template, str) or uri_template in seen_templates:
                continue
            if toolkit.select(registry.id, "resource", uri_template) is None:
                continue
            seen_templates.add(uri_template)
            templates.append(template)
            template_routes.append((template_pattern(uri_template), registry))
    catalog = Catalog(
        tools,
        resources,
        templates,
        prompts,
        skipped,
        tool_routes,
        prompt_routes,
        resource_routes,
        tuple(template_routes),
    )
    return catalog if allowed_tool is None else catalog.only(allowed_tool)
