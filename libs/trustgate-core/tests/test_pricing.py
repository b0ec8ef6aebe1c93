"""Prices from the curated catalog and a policy's custom pricing, and the cost of a usage:
each token priced once, no price (so no cost) for a model the catalog does not know."""

from __future__ import annotations

from typing import Any

import pytest

from trustgate_core.pricing import (
    Cost,
    CustomPricing,
    ModelPrice,
    PriceBook,
    catalog_models,
    cost_of,
)

BOOK = PriceBook.default()

GPT_4O_MINI = ModelPrice(input=0.15e-6, output=0.60e-6, cached_input=0.075e-6)
SONNET_4 = ModelPrice(input=3e-6, output=15e-6, cached_input=0.30e-6, cache_write=3.75e-6)


@pytest.mark.parametrize(
    ("model", "provider", "price"),
    [
        ("gpt-4o-mini", "openai", GPT_4O_MINI),
        ("gpt-4o", "openai", ModelPrice(input=2.5e-6, output=10e-6, cached_input=1.25e-6)),
        ("gpt-4.1", "openai", ModelPrice(input=2e-6, output=8e-6, cached_input=0.5e-6)),
        ("claude-sonnet-4-20250514", "anthropic", SONNET_4),
        (
            "claude-3-5-haiku-20241022",
            "anthropic",
            ModelPrice(input=0.8e-6, output=4e-6, cached_input=0.08e-6, cache_write=1e-6),
        ),
        # a catalogued model reached through another provider is priced as the catalog's
        ("gpt-4o-mini", "openai_compatible", GPT_4O_MINI),
        ("gpt-4o-mini", None, GPT_4O_MINI),
        # dated snapshots of a base model, both date spellings
        ("gpt-4o-mini-2024-07-18", "openai", GPT_4O_MINI),
        ("claude-sonnet-4-20250514", None, SONNET_4),
        # priced apart from its base model: the first gpt-4o snapshot cost twice as much
        ("gpt-4o-2024-05-13", "openai", ModelPrice(input=5e-6, output=15e-6)),
        # no cached price published in the catalog: cached tokens cost the input price
        ("mistral-small-latest", "mistral", ModelPrice(input=0.1e-6, output=0.3e-6)),
    ],
)
def test_catalog_prices_known_models_per_token(
    model: str, provider: str | None, price: ModelPrice
) -> None:
    assert BOOK.price(model, provider) == price


def test_a_model_is_found_by_its_external_id_and_the_provider_scope_comes_first() -> None:
    book = PriceBook(
        [
            {
                "provider": "a",
                "slug": "m",
                "external_id": "m-ext",
                "input_price": "1",
                "output_price": "2",
            },
            {
                "provider": "b",
                "slug": "m",
                "external_id": "m",
                "input_price": "3",
                "output_price": "4",
            },
        ]
    )
    assert book.price("m-ext", "b") == ModelPrice(input=1e-6, output=2e-6)
    assert book.price("m", "b") == ModelPrice(input=3e-6, output=4e-6)
    assert book.price("m", "a") == ModelPrice(input=1e-6, output=2e-6)
    assert book.price("m", "c") == ModelPrice(input=1e-6, output=2e-6)  # the first listed


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o-mini-fast",  # nothing fuzzier than a snapshot date
        "gpt-4o-mini-2024-07",
        "my-finetune",
        "GPT-4O-MINI",
        "deepseek-chat",  # catalogued without a price
        "",
        None,
    ],
)
def test_an_unknown_model_has_no_price(model: str | None) -> None:
    assert BOOK.price(model, "openai") is None


def test_custom_pricing_exact_slug_beats_globs_and_the_longest_glob_wins() -> None:
    custom = CustomPricing(
        {
            "gpt-*": {"input": 1e-6, "output": 2e-6},
            "gpt-4o*": {"input": 3e-6, "output": 4e-6},
            "gpt-4o-mini": {"input": 5e-6, "output": 6e-6},
            "*mini*": {"input": 7e-6, "output": 8e-6},
        }
    )
    assert custom.price("gpt-4o-mini") == ModelPrice(input=5e-6, output=6e-6)
    assert custom.price("gpt-4o-2024-08-06") == ModelPrice(input=3e-6, output=4e-6)
    assert custom.price("gpt-4o-mini-2024-07-18") == ModelPrice(input=3e-6, output=4e-6)
    assert custom.price("gpt-3.5-turbo") == ModelPrice(input=1e-6, output=2e-6)
    assert custom.price("o4-mini") == ModelPrice(input=7e-6, output=8e-6)
    assert custom.price("claude-3") is None
    # the same answer again (from its memo)
    assert custom.price("gpt-4o-2024-08-06") == ModelPrice(input=3e-6, output=4e-6)


def test_custom_pricing_wins_over_the_catalog_and_falls_back_to_it() -> None:
    custom = CustomPricing(
        {"gpt-4o*": {"input": 1e-6, "output": 1e-6}, "local/*": {"input": 0, "output": 0}}
    )
    assert BOOK.price("gpt-4o-mini", "openai", custom) == ModelPrice(input=1e-6, output=1e-6)
    assert BOOK.price("local/llama", None, custom) == ModelPrice(input=0.0, output=0.0)
    assert BOOK.price("gpt-4.1", "openai", custom) == BOOK.price("gpt-4.1", "openai")
    assert BOOK.price("unknown", "openai", custom) is None


def test_openai_usage_prices_cached_tokens_apart_inside_the_prompt_count() -> None:
    # OpenAI's prompt_tokens include the cached ones: 8 fresh + 3 cached
    usage = {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "cached_input_tokens": 3,
    }
    cost = cost_of(usage, GPT_4O_MINI)
    assert cost == Cost(
        prompt_usd=0.0000012,
        completion_usd=0.0000042,
        cached_usd=0.000000225,
        total_usd=0.000005625,
    )
    assert cost.as_event() == {
        "prompt_usd": 0.0000012,
        "completion_usd": 0.0000042,
        "cached_usd": 0.000000225,
        "total_usd": 0.000005625,
        "currency": "USD",
    }


def test_anthropic_usage_prices_cache_reads_and_writes_each_once() -> None:
    # as the proxy normalises Anthropic: input_tokens 1000 + reads 4000 + writes 2000
    usage = {
        "prompt_tokens": 7000,
        "completion_tokens": 500,
        "cached_input_tokens": 4000,
        "cache_write_tokens": 2000,
    }
    cost = cost_of(usage, SONNET_4)
    # 1000 x $3/M + 2000 x $3.75/M; 4000 x $0.30/M; 500 x $15/M
    assert (cost.prompt_usd, cost.cached_usd, cost.completion_usd) == (0.0105, 0.0012, 0.0075)
    assert cost.total_usd == 0.0192


def test_without_cache_prices_cached_and_written_tokens_cost_the_input_price() -> None:
    usage = {
        "prompt_tokens": 7000,
        "completion_tokens": 500,
        "cached_input_tokens": 4000,
        "cache_write_tokens": 2000,
    }
    cost = cost_of(usage, ModelPrice(input=3e-6, output=15e-6))
    assert (cost.prompt_usd, cost.cached_usd, cost.completion_usd) == (0.021, 0.0, 0.0075)
    assert cost.total_usd == 0.0285


@pytest.mark.parametrize(
    ("usage", "total"),
    [
        ({}, 0.0),
        ({"prompt_tokens": 10}, 0.0000015),
        # counts a provider got wrong never make a token cost twice or below zero
        ({"prompt_tokens": 10, "cached_input_tokens": 25}, 0.00000075),
        ({"prompt_tokens": -5, "completion_tokens": "7", "cached_input_tokens": None}, 0.0),
        ({"prompt_tokens": True, "completion_tokens": 1}, 0.0000006),
    ],
)
def test_odd_usage_never_costs_a_token_twice(usage: dict[str, Any], total: float) -> None:
    assert cost_of(usage, GPT_4O_MINI).total_usd == total


def test_costs_carry_no_float_noise() -> None:
    price = ModelPrice(input=0.1e-6, output=0.2e-6)  # 0.1 + 0.2 != 0.3 in floats
    cost = cost_of({"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}, price)
    assert (cost.prompt_usd, cost.completion_usd, cost.total_usd) == (0.1, 0.2, 0.3)
    many = cost_of({"prompt_tokens": 123_456_789, "completion_tokens": 3}, GPT_4O_MINI)
    assert repr(many.total_usd) == "18.51852015"  # 18.51851835 + 0.0000018


def test_the_admin_catalog_view_hides_the_pricing_only_fields() -> None:
    models = catalog_models()
    assert models and not any("cached_input_price" in m or "cache_write_price" in m for m in models)
    models[0]["capabilities"]["chat"] = "changed"
    assert catalog_models()[0]["capabilities"]["chat"] is True
