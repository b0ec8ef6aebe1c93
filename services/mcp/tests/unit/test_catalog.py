"""A consumer's catalog: its servers' tools, prompts, resources and templates merged in
its registry order, named without collisions, cut by its toolkit and its tool allow-list,
and each exposed name routed to the server (and the name) it came from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from trustgate_core.models import Consumer, Registry
from trustgate_mcp.domain.catalog import Route, ServerLists, build_catalog

NOW = datetime.now(UTC)
GW = UUID(int=1)
WEATHER = Registry(
    id=UUID("0a1b2c3d-0000-4000-8000-000000000001"),
    gateway_id=GW,
    created_at=NOW,
    updated_at=NOW,
    name="weather",
    type="MCP",
)
DOCS = Registry(
    id=UUID("9f8e7d6c-0000-4000-8000-000000000002"),
    gateway_id=GW,
    created_at=NOW,
    updated_at=NOW,
    name="docs",
    type="MCP",
)


def consumer(*registries: Registry, **fields: Any) -> Consumer:
    return Consumer(
        id=UUID(int=7),
        gateway_id=GW,
        created_at=NOW,
        updated_at=NOW,
        name="agent",
        slug="agent",
        type="MCP",
        registries=[{"registry_id": registry.id} for registry in registries],
        **fields,
    )


def tool(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "inputSchema": {"type": "object"}, **fields}


def weather(**lists: list[dict[str, Any]]) -> ServerLists:
    return ServerLists(WEATHER, **lists)


def docs(**lists: list[dict[str, Any]]) -> ServerLists:
    return ServerLists(DOCS, **lists)


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


def test_both_servers_tools_are_listed_and_the_shared_name_kept_apart() -> None:
    catalog = build_catalog(
        consumer(WEATHER, DOCS),
        [
            weather(tools=[tool("forecast"), tool("search")]),
            docs(tools=[tool("search"), tool("read_page")]),
        ],
    )
    assert names(catalog.tools) == ["forecast", "weather_search", "docs_search", "read_page"]
    assert catalog.tool("weather_search") == Route(WEATHER, "search")
    assert catalog.tool("docs_search") == Route(DOCS, "search")
    assert catalog.tool("forecast") == Route(WEATHER, "forecast")
    assert catalog.tool("search") is None


def test_order_follows_the_consumers_registries_not_the_order_lists_arrived_in() -> None:
    lists = [docs(tools=[tool("b"), tool("a")]), weather(tools=[tool("z")])]
    first = build_catalog(consumer(WEATHER, DOCS), lists)
    again = build_catalog(consumer(WEATHER, DOCS), list(reversed(lists)))
    assert names(first.tools) == ["z", "b", "a"]
    assert first.tools == again.tools


def test_an_exposed_tool_is_the_upstreams_with_only_its_name_changed() -> None:
    upstream = tool(
        "search",
        title="Search",
        description="Find things",
        outputSchema={"type": "object"},
        annotations={"readOnlyHint": True},
        _meta={"k": "v"},
    )
    catalog = build_catalog(
        consumer(WEATHER, DOCS), [weather(tools=[upstream]), docs(tools=[tool("search")])]
    )
    assert catalog.tools[0] == {**upstream, "name": "weather_search"}
    assert upstream["name"] == "search"


def test_always_prefix_keeps_every_name_when_a_server_is_added() -> None:
    alone = build_catalog(
        consumer(WEATHER, always_prefix=True), [weather(tools=[tool("search"), tool("forecast")])]
    )
    both = build_catalog(
        consumer(WEATHER, DOCS, always_prefix=True),
        [weather(tools=[tool("search"), tool("forecast")]), docs(tools=[tool("search")])],
    )
    assert names(alone.tools) == ["weather_search", "weather_forecast"]
    assert names(both.tools) == ["weather_search", "weather_forecast", "docs_search"]


def test_prompts_are_named_by_the_same_rules_apart_from_tools() -> None:
    catalog = build_catalog(
        consumer(WEATHER, DOCS),
        [
            weather(tools=[tool("summarize")], prompts=[{"name": "summarize"}]),
            docs(prompts=[{"name": "summarize", "arguments": [{"name": "page"}]}]),
        ],
    )
    assert names(catalog.tools) == ["summarize"]
    assert catalog.prompts == [
        {"name": "weather_summarize"},
        {"name": "docs_summarize", "arguments": [{"name": "page"}]},
    ]
    assert catalog.prompt("docs_summarize") == Route(DOCS, "summarize")


def test_without_a_toolkit_everything_is_exposed() -> None:
    no_toolkit: tuple[list[dict[str, Any]] | None, ...] = (None, [])
    for toolkit in no_toolkit:
        catalog = build_catalog(
            consumer(WEATHER, toolkit=toolkit),
            [
                weather(
                    tools=[tool("forecast")],
                    prompts=[{"name": "p"}],
                    resources=[{"uri": "weather://today"}],
                )
            ],
        )
        assert (len(catalog.tools), len(catalog.prompts), len(catalog.resources)) == (1, 1, 1)


def test_a_toolkit_exposes_only_what_its_entries_name() -> None:
    toolkit = [
        {"registry_id": str(WEATHER.id), "tool": "search*"},
        {"registry_id": str(DOCS.id), "tool": "*"},
        {"registry_id": str(DOCS.id), "prompt": "summarize"},
    ]
    catalog = build_catalog(
        consumer(WEATHER, DOCS, toolkit=toolkit),
        [
            weather(
                tools=[tool("search_city"), tool("forecast"), tool("searchable")],
                prompts=[{"name": "summarize"}],
                resources=[{"uri": "weather://today"}],
            ),
            docs(
                tools=[tool("read_page"), tool("list_pages")],
                prompts=[{"name": "summarize"}, {"name": "outline"}],
            ),
        ],
    )
    assert names(catalog.tools) == ["search_city", "searchable", "read_page", "list_pages"]
    # weather has no prompt entry and no resource entry: none of either
    assert names(catalog.prompts) == ["summarize"]
    assert catalog.prompt("summarize") == Route(DOCS, "summarize")
    assert catalog.resources == []


def test_only_exposed_tools_take_part_in_naming() -> None:
    toolkit = [{"registry_id": str(WEATHER.id), "tool": "*"}]
    catalog = build_catalog(
        consumer(WEATHER, DOCS, toolkit=toolkit),
        [weather(tools=[tool("search")]), docs(tools=[tool("search")])],
    )
    assert names(catalog.tools) == ["search"]


def test_expose_as_renames_that_tool_and_the_others_avoid_its_name() -> None:
    toolkit = [
        {"registry_id": str(WEATHER.id), "tool": "*"},
        {"registry_id": str(DOCS.id), "tool": "lookup", "expose_as": "search"},
        {"registry_id": str(DOCS.id), "prompt": "summarize", "expose_as": "digest"},
    ]
    catalog = build_catalog(
        consumer(WEATHER, DOCS, toolkit=toolkit),
        [
            weather(tools=[tool("search")]),
            docs(tools=[tool("lookup"), tool("other")], prompts=[{"name": "summarize"}]),
        ],
    )
    assert names(catalog.tools) == ["weather_search", "search"]
    assert catalog.tool("search") == Route(DOCS, "lookup")
    assert catalog.tool("weather_search") == Route(WEATHER, "search")
    assert catalog.prompt("digest") == Route(DOCS, "summarize")


def test_an_exact_entry_renames_its_tool_among_a_wildcards_others() -> None:
    toolkit = [
        {"registry_id": str(DOCS.id), "tool": "*"},
        {"registry_id": str(DOCS.id), "tool": "read_page", "expose_as": "read"},
    ]
    catalog = build_catalog(
        consumer(DOCS, toolkit=toolkit), [docs(tools=[tool("read_page"), tool("list_pages")])]
    )
    assert names(catalog.tools) == ["read", "list_pages"]
    assert catalog.tool("read") == Route(DOCS, "read_page")


def test_expose_as_on_a_wildcard_entry_renames_nothing() -> None:
    toolkit = [{"registry_id": str(DOCS.id), "tool": "read*", "expose_as": "reader"}]
    catalog = build_catalog(
        consumer(DOCS, toolkit=toolkit), [docs(tools=[tool("read_page"), tool("read_toc")])]
    )
    assert names(catalog.tools) == ["read_page", "read_toc"]


def test_toolkit_resource_entries_take_uris_and_uri_prefixes() -> None:
    toolkit = [
        {"registry_id": str(DOCS.id), "resource": "docs://pages/*"},
        {"registry_id": str(DOCS.id), "resource": "docs://index"},
    ]
    catalog = build_catalog(
        consumer(DOCS, toolkit=toolkit),
        [
            docs(
                resources=[
                    {"uri": "docs://pages/intro"},
                    {"uri": "docs://index"},
                    {"uri": "docs://secrets"},
                ],
                resource_templates=[
                    {"uriTemplate": "docs://pages/{slug}", "name": "page"},
                    {"uriTemplate": "docs://drafts/{slug}", "name": "draft"},
                ],
            )
        ],
    )
    assert [r["uri"] for r in catalog.resources] == ["docs://pages/intro", "docs://index"]
    assert [t["name"] for t in catalog.resource_templates] == ["page"]
    assert catalog.resource("docs://secrets") is None
    assert catalog.resource("docs://drafts/x") is None
    assert catalog.resource("docs://pages/setup") == Route(DOCS, "docs://pages/setup")


def test_a_uri_offered_by_two_servers_goes_to_the_first_in_registry_order() -> None:
    shared = {"uri": "file:///README.md"}
    catalog = build_catalog(
        consumer(DOCS, WEATHER),
        [weather(resources=[shared]), docs(resources=[{"uri": "file:///README.md", "x": 1}])],
    )
    assert catalog.resources == [{"uri": "file:///README.md", "x": 1}]
    assert catalog.resource("file:///README.md") == Route(DOCS, "file:///README.md")


def test_a_template_matches_one_path_segment_per_variable() -> None:
    catalog = build_catalog(
        consumer(WEATHER, DOCS),
        [
            weather(resource_templates=[{"uriTemplate": "weather://forecast/{city}/{day}"}]),
            docs(resource_templates=[{"uriTemplate": "docs://{+path}"}]),
        ],
    )
    assert catalog.resource("weather://forecast/paris/monday") == Route(
        WEATHER,
        "weather://forecast/paris/monday",
    )
    assert catalog.resource("weather://forecast/paris") is None
    assert catalog.resource("weather://forecast/paris/monday/extra") is None
    assert catalog.resource("weather://forecast/pa.ris/mon-day") is not None
    # reserved expansion may span segments
    assert catalog.resource("docs://guides/setup/linux") == Route(DOCS, "docs://guides/setup/linux")
    assert catalog.resource("other://x") is None


def test_a_listed_uri_wins_over_a_template_that_also_matches_it() -> None:
    catalog = build_catalog(
        consumer(WEATHER, DOCS),
        [
            weather(resource_templates=[{"uriTemplate": "shared://{name}"}]),
            docs(resources=[{"uri": "shared://index"}]),
        ],
    )
    assert catalog.resource("shared://index") == Route(DOCS, "shared://index")
    assert catalog.resource("shared://other") == Route(WEATHER, "shared://other")


def test_tools_the_allow_list_refuses_are_neither_listed_nor_routed() -> None:
    catalog = build_catalog(
        consumer(WEATHER, DOCS),
        [weather(tools=[tool("forecast"), tool("search")]), docs(tools=[tool("search")])],
        allowed_tool=lambda name: name != "docs_search",
    )
    assert names(catalog.tools) == ["forecast", "weather_search"]
    assert catalog.tool("docs_search") is None
    # the names do not depend on the allow-list
    assert catalog.tool("weather_search") == Route(WEATHER, "search")


def test_items_without_a_name_or_uri_are_left_out() -> None:
    catalog = build_catalog(
        consumer(WEATHER),
        [
            weather(
                tools=[{"description": "no name"}, tool("ok")],
                resources=[{"name": "no uri"}],
                resource_templates=[{"name": "no template"}],
            )
        ],
    )
    assert names(catalog.tools) == ["ok"]
    assert (catalog.resources, catalog.resource_templates) == ([], [])
