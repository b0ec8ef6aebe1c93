"""The names a client sees for tools and prompts: kept unless they collide, then
``{server}_{name}``, ``{server}_{id8}_{name}``, a numeric suffix; always valid for model
providers and the same for the same inputs."""

from __future__ import annotations

import re
from uuid import UUID

from trustgate_mcp.domain.naming import Wanted, assign, exposed

VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
WEATHER = UUID("0a1b2c3d-0000-4000-8000-000000000001")
DOCS = UUID("9f8e7d6c-0000-4000-8000-000000000002")


def test_names_no_other_server_has_are_kept() -> None:
    names = assign([Wanted("weather", WEATHER, "forecast"), Wanted("docs", DOCS, "search")])
    assert names == ["forecast", "search"]


def test_every_server_sharing_a_name_gets_its_own_prefix() -> None:
    names = assign(
        [
            Wanted("weather", WEATHER, "search"),
            Wanted("weather", WEATHER, "forecast"),
            Wanted("docs", DOCS, "search"),
        ]
    )
    assert names == ["weather_search", "forecast", "docs_search"]


def test_a_prefixed_name_that_still_collides_gains_the_short_registry_id() -> None:
    # two registry names that sanitize alike
    names = assign([Wanted("my.docs", WEATHER, "search"), Wanted("my docs", DOCS, "search")])
    assert names == ["my_docs_0a1b2c3d_search", "my_docs_9f8e7d6c_search"]


def test_a_name_still_colliding_after_the_id_gets_a_numeric_suffix() -> None:
    names = assign(
        [
            Wanted("docs", DOCS, "get.page"),
            Wanted("docs", DOCS, "get page"),
            Wanted("docs", DOCS, "get/page"),
        ]
    )
    assert names == [
        "docs_9f8e7d6c_get_page",
        "docs_9f8e7d6c_get_page_2",
        "docs_9f8e7d6c_get_page_3",
    ]


def test_a_prefixed_name_avoids_a_name_another_tool_keeps() -> None:
    # "weather_search" is docs' own tool; weather's colliding "search" cannot take it
    names = assign(
        [
            Wanted("weather", WEATHER, "search"),
            Wanted("docs", DOCS, "search"),
            Wanted("docs", DOCS, "weather_search"),
        ]
    )
    assert names == ["weather_0a1b2c3d_search", "docs_search", "weather_search"]


def test_always_prefix_names_every_tool_after_its_server_and_a_new_server_renames_none() -> None:
    before = assign([Wanted("weather", WEATHER, "search")], always_prefix=True)
    after = assign(
        [Wanted("weather", WEATHER, "search"), Wanted("docs", DOCS, "search")],
        always_prefix=True,
    )
    assert before == ["weather_search"]
    assert after == ["weather_search", "docs_search"]


def test_without_always_prefix_a_new_server_with_the_same_name_renames_the_tool() -> None:
    assert assign([Wanted("weather", WEATHER, "search")]) == ["search"]
    assert assign([Wanted("weather", WEATHER, "search"), Wanted("docs", DOCS, "search")])[0] == (
        "weather_search"
    )


def test_characters_providers_refuse_become_underscores() -> None:
    names = assign(
        [Wanted("Weather API", WEATHER, "get.forecast/v2"), Wanted("docs", DOCS, "")],
        always_prefix=False,
    )
    assert names == ["get_forecast_v2", "_"]
    assert assign([Wanted("Weather API", WEATHER, "é")], always_prefix=True) == ["Weather_API__"]


def test_a_long_name_is_shortened_to_64_the_same_way_every_time_and_stays_distinct() -> None:
    long_a = "summarize_" + "x" * 60 + "_a"
    long_b = "summarize_" + "x" * 60 + "_b"
    first = assign([Wanted("docs", DOCS, long_a), Wanted("docs", DOCS, long_b)])
    again = assign([Wanted("docs", DOCS, long_a), Wanted("docs", DOCS, long_b)])
    assert first == again
    assert all(VALID.match(name) for name in first)
    assert [len(name) for name in first] == [64, 64]
    assert first[0] != first[1]
    assert first[0].startswith(long_a[:55] + "_")


def test_a_long_server_name_prefix_still_gives_a_valid_name() -> None:
    server = "s" * 70
    names = assign([Wanted(server, WEATHER, "search"), Wanted(server, DOCS, "search")])
    assert all(VALID.match(name) for name in names)
    assert names[0] != names[1]


def test_a_numeric_suffix_on_a_64_character_name_keeps_it_within_64() -> None:
    base = "t" * 64
    names = assign([Wanted("d", DOCS, base + "."), Wanted("d", DOCS, base + "/")])
    assert all(VALID.match(name) for name in names)
    assert len(set(names)) == 2


def test_expose_as_wins_and_other_names_avoid_it() -> None:
    names = assign(
        [
            Wanted("weather", WEATHER, "search"),
            Wanted("docs", DOCS, "lookup", expose_as="search"),
        ]
    )
    assert names == ["weather_search", "search"]


def test_an_invalid_expose_as_is_made_valid() -> None:
    assert assign([Wanted("docs", DOCS, "lookup", expose_as="find docs!")]) == ["find_docs_"]


def test_exposed_keeps_a_valid_name_as_it_is() -> None:
    assert exposed("get_forecast-2") == "get_forecast-2"
