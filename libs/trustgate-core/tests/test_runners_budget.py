"""token_rate_limiter's runner on in-process counters: what a call reserves, what it is
refused with, and what it is finally charged (its usage; its prompt and delivered output
when cut short; nothing when no answer came or a policy answered the call)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from trustgate_core.counters import LocalCounters
from trustgate_core.errors import PolicyRejected
from trustgate_core.ids import uuid7
from trustgate_core.models import Consumer, Gateway
from trustgate_core.plugins.tokens import TokenRateLimiterSettings
from trustgate_core.policy import Answer, PolicyDeps, PolicyExchange, PolicyInfo
from trustgate_core.policy.runners.budget import (
    BLOB_TOKENS,
    TokenBudgetRunner,
    estimate_prompt_tokens,
)
from trustgate_core.pricing import PriceBook

NOW = datetime.now(UTC)
GW = uuid7()
GATEWAY = Gateway(id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="gw")
CHAT = "/v1/chat/completions"
HI = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18, "cached_input_tokens": 3}


class Call(PolicyExchange):
    """A call as the proxy's exchange answers it, set by the test."""

    def __init__(
        self,
        consumer: Consumer,
        doc: dict[str, Any],
        path: str = CHAT,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(GATEWAY, consumer, headers)
        self.doc = doc
        self.body = orjson.dumps(doc)
        self.route = path
        self.answered: dict[str, Any] | None = None
        self.code = 0
        self.sent: str | None = None
        self.streamed = False
        self.cost: Any = None

    @property
    def path(self) -> str:
        return self.route

    @property
    def stream(self) -> bool:
        return self.streamed

    @property
    def status(self) -> int:
        return self.code

    @property
    def model(self) -> str | None:
        return self.sent

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.answered

    def set_cost(self, cost: Any) -> None:
        self.cost = cost

    def answer_with(self, usage: dict[str, Any] | None, status: int = 200) -> None:
        self.answered, self.code, self.sent = usage, status, self.requested_model


def runner(
    settings: dict[str, Any],
    mode: str = "enforce",
    counters: LocalCounters | None = None,
    *,
    global_: bool = False,
) -> tuple[TokenBudgetRunner, Consumer]:
    info = PolicyInfo(
        id=uuid7(),
        name="budget",
        plugin="token_rate_limiter",
        mode=mode,  # type: ignore[arg-type]
        stages=frozenset({"pre_request", "post_response"}),
        global_=global_,
    )
    validated = TokenRateLimiterSettings.model_validate(settings)
    deps = PolicyDeps(counters=counters or LocalCounters(), prices=PriceBook.default())
    cid = uuid7()
    consumer = Consumer(
        id=cid,
        gateway_id=GW,
        created_at=NOW,
        updated_at=NOW,
        name="c",
        slug="c",
        policy_ids=[info.id],
    )
    return TokenBudgetRunner(info, validated, deps), consumer


async def spent(r: TokenBudgetRunner, key_part: str = "") -> dict[str, int]:
    counters: LocalCounters = r.counters
    return {k: v[0] for k, v in counters._values.items() if key_part in k}


async def one_call(
    r: TokenBudgetRunner, x: Call, usage: dict[str, Any] | None = USAGE, status: int = 200
) -> None:
    await r.pre_request(x)
    x.answer_with(usage, status)
    await r.post_response(x)


# -- estimating ---------------------------------------------------------------------------


def test_the_prompt_estimate_is_the_body_bytes_over_three_rounded_up() -> None:
    body = orjson.dumps(HI)
    assert estimate_prompt_tokens(body, HI) == -(-len(body) // 3)


def test_an_inline_image_counts_a_flat_estimate_not_its_base64_size() -> None:
    image = "data:image/png;base64," + "A" * 300_000
    doc = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}
        ],
    }
    anthropic = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 9000},
                    }
                ],
            }
        ],
    }
    for d in (doc, anthropic):
        estimate = estimate_prompt_tokens(orjson.dumps(d), d)
        assert BLOB_TOKENS < estimate < BLOB_TOKENS + 60


# -- reserving and settling -----------------------------------------------------------------


async def test_a_call_reserves_its_estimate_then_is_charged_its_usage_without_cache_reads() -> None:
    r, consumer = runner({"aggregate": {"max": 100_000, "time_window": "1h"}})
    x = Call(consumer, {**HI, "max_tokens": 50})
    await r.pre_request(x)
    estimate = estimate_prompt_tokens(x.body, x.doc) + 50
    (key,) = (await spent(r)).keys()
    assert key.startswith(f"trl:{r.id}:consumer:{consumer.id}:")
    assert (await spent(r)) == {key: estimate}
    headers = dict(x.response_headers)
    assert headers[b"x-ratelimit-limit-tokens"] == b"100000"
    assert headers[b"x-ratelimit-remaining-tokens"] == str(100_000 - estimate).encode()
    assert headers[b"x-ratelimit-reset-tokens"].endswith(b"s")
    x.answer_with(USAGE)
    await r.post_response(x)
    assert (await spent(r)) == {key: 11 - 3 + 7}


async def test_cache_reads_count_when_asked_and_counting_picks_the_side() -> None:
    for settings, charged in (
        ({"count_cache_reads": True}, 18),
        ({"counting": "input"}, 8),
        ({"counting": "output"}, 7),
    ):
        r, consumer = runner({"aggregate": {"max": 10**6, "time_window": "1h"}, **settings})
        await one_call(r, Call(consumer, HI))
        assert list((await spent(r)).values()) == [charged]


async def test_a_call_without_an_answer_releases_its_whole_reservation() -> None:
    r, consumer = runner({"aggregate": {"max": 100_000, "time_window": "1h"}})
    await one_call(r, Call(consumer, HI), usage=None, status=0)
    await one_call(r, Call(consumer, HI), usage=None, status=502)
    assert list((await spent(r)).values()) == [0]


async def test_a_call_a_policy_answered_a_cache_hit_releases_its_reservation() -> None:
    """No upstream call, nothing spent: whatever usage the replayed answer tells, and a
    replayed stream is never taken for one cut short."""
    prices = {"gpt-4o-mini*": {"input": 0.000001, "output": 0.000002}}
    for settings in (
        {"count_cache_reads": True},
        {"unit": "dollars", "custom_pricing": prices},
    ):
        max_ = 1.0 if settings.get("unit") == "dollars" else 10**6
        r, consumer = runner({"aggregate": {"max": max_, "time_window": "1h"}, **settings})
        x = Call(consumer, HI)
        await r.pre_request(x)
        (reserved,) = (await spent(r)).values()
        assert reserved > 0  # reserved before the lookup
        x.answer = Answer(200, b"{}")
        x.answer_with(USAGE)
        await r.post_response(x)
        assert list((await spent(r)).values()) == [0]
        assert x.cost is None  # not priced either

        streamed = Call(consumer, {**HI, "stream": True})
        streamed.streamed = True
        await r.pre_request(streamed)
        (delivered,) = streamed.response_filters
        delivered.feed(b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n')
        streamed.answer = Answer(200, b"")
        streamed.answer_with(None, status=499)
        await r.post_response(streamed)
        assert list((await spent(r)).values()) == [0]


async def test_the_output_reserved_is_max_tokens_else_the_configured_default() -> None:
    r, consumer = runner(
        {"aggregate": {"max": 10**6, "time_window": "1h"}, "default_output_tokens": 300}
    )
    for doc, output in (
        (HI, 300),
        ({**HI, "max_completion_tokens": 40}, 40),
        ({**HI, "max_output_tokens": 20}, 20),
    ):
        x = Call(consumer, doc)
        await r.pre_request(x)
        assert x.scratch[r.id].amount == estimate_prompt_tokens(x.body, doc) + output
        await r.post_response(x)


async def test_embeddings_reserve_no_output_and_count_tokens_is_not_charged() -> None:
    r, consumer = runner({"aggregate": {"max": 10**6, "time_window": "1h"}})
    doc = {"model": "text-embedding-3-small", "input": "hello"}
    x = Call(consumer, doc, "/v1/embeddings")
    await r.pre_request(x)
    assert x.scratch[r.id].amount == estimate_prompt_tokens(x.body, doc)
    x.answer_with({"prompt_tokens": 8, "total_tokens": 8})
    await r.post_response(x)
    free = Call(consumer, HI, "/v1/messages/count_tokens")
    await one_call(r, free)
    assert list((await spent(r)).values()) == [8]


async def test_over_budget_is_a_429_with_retry_after_and_the_headers() -> None:
    r, consumer = runner({"aggregate": {"max": 100, "time_window": "1h"}})
    with pytest.raises(PolicyRejected) as refused:
        await r.pre_request(Call(consumer, {**HI, "max_tokens": 500}))
    error = refused.value
    assert error.status == 429 and error.code == "token_budget_exceeded"
    assert error.body() == {
        "error": {"type": "token_budget_exceeded", "scope": "consumer", "window": "1h"}
    }
    headers = dict(error.headers)
    assert 0 < int(headers[b"retry-after"]) <= 3600
    assert headers[b"x-ratelimit-remaining-tokens"] == b"100"
    assert await spent(r) == {}  # nothing reserved


async def test_a_global_policy_counts_for_the_gateway() -> None:
    r, consumer = runner({"aggregate": {"max": 10**6, "time_window": "1h"}}, global_=True)
    other = consumer.model_copy(update={"id": uuid7(), "policy_ids": []})
    await one_call(r, Call(other, HI))
    await one_call(r, Call(consumer, HI))  # attached too: still the gateway's budget
    (key,) = (await spent(r)).keys()
    assert key.startswith(f"trl:{r.id}:global:{GW}:")


async def test_group_by_header_keeps_a_budget_per_value() -> None:
    r, consumer = runner(
        {"aggregate": {"max": 10**6, "time_window": "1h"}, "group_by_header": "X-Team"}
    )
    for team in (b"red", b"blue", b"red"):
        await one_call(r, Call(consumer, HI, headers=((b"x-team", team),)))
    assert sorted((await spent(r, ":hdr:")).values()) == [15, 30]


async def test_the_best_matching_rule_wins_exact_then_longest_literal() -> None:
    r, consumer = runner(
        {
            "rules": [
                {"model": "gpt-*", "max": 10**6, "time_window": "1h"},
                {"model": "gpt-4o*", "max": 10**6, "time_window": "1h"},
                {"model": "gpt-4o-mini", "max": 10**6, "time_window": "1h"},
            ]
        }
    )
    for model in ("gpt-4o-mini", "gpt-4o-2024", "gpt-3.5", "claude-x"):
        await one_call(r, Call(consumer, {**HI, "model": model}))
    assert {k.split(":model:")[1].rsplit(":", 1)[0]: v for k, v in (await spent(r)).items()} == {
        "gpt-4o-mini": 15,
        "gpt-4o*": 15,
        "gpt-*": 15,
    }


async def test_legacy_window_and_aggregate_are_separate_counters_reserved_together() -> None:
    r, consumer = runner(
        {
            "aggregate": {"max": 10**6, "time_window": "1d"},
            "window": {"unit": "day", "max": 10**6},
        }
    )
    await one_call(r, Call(consumer, HI))
    keys = await spent(r)
    assert len(keys) == 2 and set(keys.values()) == {15}
    assert any(":window:" in k for k in keys)


async def test_exceeded_with_downgrade_model_reserves_against_the_downgraded_model() -> None:
    r, consumer = runner(
        {
            "rules": [{"model": "gpt-4o", "max": 10, "time_window": "1h"}],
            "behavior_on_exceeded": "downgrade_model",
            "downgrade_to": "gpt-4o-mini",
        }
    )
    x = Call(consumer, {**HI, "model": "gpt-4o"})
    await r.pre_request(x)
    assert x.doc["model"] == "gpt-4o-mini" and x.dirty
    assert (
        dict(x.response_headers)[b"x-neuraltrust-model-downgraded"] == "gpt-4o→gpt-4o-mini".encode()
    )


# -- dollars ------------------------------------------------------------------------------


async def test_dollars_are_reserved_and_charged_in_micro_usd_at_custom_prices() -> None:
    r, consumer = runner(
        {
            "unit": "dollars",
            "aggregate": {"max": 1, "time_window": "1d"},
            "custom_pricing": {"my-*": {"input": 0.000001, "output": 0.000002}},
        }
    )
    x = Call(consumer, {**HI, "model": "my-model", "max_tokens": 10})
    await r.pre_request(x)
    prompt = estimate_prompt_tokens(x.body, x.doc)
    assert x.scratch[r.id].amount == prompt + 20
    headers = dict(x.response_headers)
    assert headers[b"x-budget-unit"] == b"dollars"
    assert headers[b"x-budget-scope"] == b"consumer"
    assert headers[b"x-budget-window"] == b"1d"
    assert headers[b"x-budget-limit-usd"] == b"1.000000"
    assert headers[b"x-budget-remaining-usd"] == f"{(10**6 - prompt - 20) / 1e6:.6f}".encode()
    x.answer_with(USAGE)
    await r.post_response(x)
    assert list((await spent(r)).values()) == [11 + 14]
    assert x.cost is not None and x.cost.total_usd == 0.000025


async def test_a_model_without_a_price_is_refused_under_a_dollar_budget() -> None:
    r, consumer = runner({"unit": "dollars", "aggregate": {"max": 1, "time_window": "1d"}})
    with pytest.raises(PolicyRejected) as refused:
        await r.pre_request(Call(consumer, {**HI, "model": "my-finetune"}))
    assert refused.value.status == 403
    error = refused.value.body()["error"]
    assert error["type"] == "model_price_unknown" and error["model"] == "my-finetune"
    assert "custom_pricing" in error["message"]


# -- cost cap -------------------------------------------------------------------------------


async def test_cost_cap_refuses_a_model_priced_above_its_ceiling() -> None:
    r, consumer = runner({"cost_cap": {"enabled": True, "max_output_cost_per_1k_tokens": 0.001}})
    await r.pre_request(Call(consumer, HI))  # gpt-4o-mini: $0.0006 per 1k out
    with pytest.raises(PolicyRejected) as refused:
        await r.pre_request(Call(consumer, {**HI, "model": "gpt-4o"}))
    assert refused.value.status == 403 and refused.value.code == "model_too_expensive"
    assert refused.value.body() == {
        "error": {
            "type": "model_too_expensive",
            "model": "gpt-4o",
            "input_price": 0.0025,
            "output_price": 0.01,
            "max_input": None,
            "max_output": 0.001,
        }
    }


async def test_cost_cap_downgrades_and_treats_unknown_models_as_told() -> None:
    cap = {"enabled": True, "max_output_cost_per_1k_tokens": 0.001}
    r, consumer = runner(
        {
            "cost_cap": {
                **cap,
                "behavior_on_violation": "downgrade",
                "downgrade_to": "gpt-4o-mini",
                "unknown_model": "assume_max",
            }
        }
    )
    for model in ("gpt-4o", "my-finetune"):
        x = Call(consumer, {**HI, "model": model})
        await r.pre_request(x)
        assert x.doc["model"] == "gpt-4o-mini"
    passes, _ = runner({"cost_cap": cap})
    await passes.pre_request(Call(consumer, {**HI, "model": "my-finetune"}))
    rejects, _ = runner({"cost_cap": {**cap, "unknown_model": "reject"}})
    with pytest.raises(PolicyRejected):
        await rejects.pre_request(Call(consumer, {**HI, "model": "my-finetune"}))


# -- observe --------------------------------------------------------------------------------


async def test_observe_counts_but_changes_nothing_and_reports_what_it_would_refuse() -> None:
    r, consumer = runner(
        {
            "aggregate": {"max": 10, "time_window": "1h"},
            "behavior_on_exceeded": "downgrade_model",
            "downgrade_to": "gpt-4o-mini",
        },
        mode="observe",
    )
    x = Call(consumer, {**HI, "model": "gpt-4o"})
    with pytest.raises(PolicyRejected) as would:
        await r.pre_request(x)
    assert would.value.status == 429
    assert x.doc["model"] == "gpt-4o" and not x.dirty and x.response_headers == []
    x.answer_with(USAGE)
    await r.post_response(x)
    assert list((await spent(r)).values()) == [15]


# -- streams ---------------------------------------------------------------------------------


async def test_a_stream_cut_short_is_charged_its_prompt_and_the_deltas_delivered() -> None:
    cases = {
        CHAT: b'data: {"choices":[{"delta":{"role":"assistant","content":"Hel"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n',
        "/v1/messages": b'event: content_block_delta\ndata: {"type":"content_block_delta",'
        b'"delta":{"type":"text_delta","text":"Hel"}}\n\n' * 2,
        "/v1/responses": b'event: response.output_text.delta\ndata: {"type":'
        b'"response.output_text.delta","delta":"Hel"}\n\n' * 2,
    }
    for path, chunk in cases.items():
        r, consumer = runner({"aggregate": {"max": 10**6, "time_window": "1h"}})
        x = Call(consumer, {**HI, "stream": True}, path)
        x.streamed = True
        await r.pre_request(x)
        await r.pre_response(x)
        (delivered,) = x.response_filters
        assert delivered.feed(chunk) == chunk
        x.answer_with(None, status=499)
        await r.post_response(x)
        prompt = estimate_prompt_tokens(x.body, x.doc)
        assert list((await spent(r)).values()) == [prompt + 2], path


async def test_a_finished_stream_is_charged_its_final_usage() -> None:
    r, consumer = runner({"aggregate": {"max": 10**6, "time_window": "1h"}})
    x = Call(consumer, {**HI, "stream": True})
    x.streamed = True
    await r.pre_request(x)
    await r.pre_response(x)
    (delivered,) = x.response_filters
    delivered.feed(b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n')
    x.answer_with(USAGE)
    await r.post_response(x)
    assert list((await spent(r)).values()) == [15]
