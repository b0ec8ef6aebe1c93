"""The policy engine: which policies a consumer's chain holds, in what order and batches,
and what each mode, refusal and failure does to the call and its record."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from trustgate_core.counters import CountersUnavailable
from trustgate_core.errors import PolicyRejected, RateLimitUnavailable
from trustgate_core.ids import uuid7
from trustgate_core.models import Consumer, Gateway, Policy
from trustgate_core.policy import (
    PolicyDeps,
    PolicyEngine,
    PolicyExchange,
    PolicyInfo,
    Runner,
)

NOW = datetime.now(UTC)
GW = uuid7()
GATEWAY = Gateway(id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="gw")


class Probe(Runner):
    """Records that it ran; refuses, fails or waits as its settings say."""

    ran: list[str]
    running: int = 0
    overlapped = False

    def __init__(self, info: PolicyInfo, settings: Any, deps: PolicyDeps) -> None:
        super().__init__(info, settings, deps)
        self.behaviour = BEHAVIOUR.get(info.id, "pass")

    async def pre_request(self, x: PolicyExchange) -> Any:
        Probe.ran.append(self.name)
        Probe.running += 1
        await asyncio.sleep(0)  # lets a concurrent batch member start
        Probe.overlapped |= Probe.running > 1
        Probe.running -= 1
        if self.behaviour == "refuse":
            raise PolicyRejected(
                429, {"error": "no"}, ((b"retry-after", b"3"),), kind="rate_limited"
            )
        if self.behaviour == "unreachable":
            raise CountersUnavailable("down")
        if self.behaviour == "bug":
            raise RuntimeError("a bug")
        if self.behaviour == "throttle":
            return "throttle"
        return None

    async def post_response(self, x: PolicyExchange) -> Any:
        Probe.ran.append(f"{self.name}:post")
        if self.behaviour == "refuse":
            raise PolicyRejected(429, {"error": "no"})
        return None


#: what a probe does, by policy id (its settings are its plugin's, validated by the engine)
BEHAVIOUR: dict[UUID | None, str] = {}
VALID: dict[str, dict[str, Any]] = {
    "rate_limiter": {"limit": 5, "window": "1m"},
    "token_rate_limiter": {"aggregate": {"max": 100, "time_window": "1h"}},
    "request_size_limiter": {},
    "model_allowlist": {"allowed_models": ["gpt-4o-mini"]},
}

RUNNERS = {
    plugin: Probe
    for plugin in ("rate_limiter", "token_rate_limiter", "request_size_limiter", "model_allowlist")
}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    Probe.ran = []
    Probe.running = 0
    Probe.overlapped = False


def policy(name: str, plugin: str = "rate_limiter", do: str = "pass", **fields: Any) -> Policy:
    settings = VALID[plugin] if plugin in VALID else fields.pop("settings", {})
    stages = fields.pop("stages", ["pre_request", "post_response"])
    made = Policy.model_validate(
        {
            "id": fields.pop("id", uuid7()),
            "gateway_id": GW,
            "created_at": NOW,
            "updated_at": NOW,
            "name": name,
            "slug": plugin,
            "settings": settings,
            "stages": stages,
            **fields,
        }
    )
    BEHAVIOUR[made.id] = do
    return made


def consumer(*attached: Policy) -> Consumer:
    cid = uuid7()
    return Consumer(
        id=cid,
        gateway_id=GW,
        created_at=NOW,
        updated_at=NOW,
        name="c",
        slug="c",
        policy_ids=[p.id for p in attached],
    )


def compile_(*policies: Policy, attach: tuple[Policy, ...] = ()) -> Any:
    engine = PolicyEngine(RUNNERS, PolicyDeps())
    table: dict[UUID, Policy] = {p.id: p for p in (*policies, *attach)}
    return engine, engine.compile(GATEWAY, consumer(*attach), table)


def exchange() -> PolicyExchange:
    return PolicyExchange(GATEWAY, consumer())


def names(chain: Any) -> list[str]:
    return [runner.name for runner in chain.runners]


def test_the_chain_holds_enabled_globals_and_the_consumer_s_own_in_order() -> None:
    a = policy("a", priority=2, **{"global": True})
    b = policy("b", "token_rate_limiter", priority=1, **{"global": True})
    off = policy("off", "request_size_limiter", enabled=False, **{"global": True})
    mine = policy("mine", "model_allowlist", priority=1)
    unattached = policy("unattached", "request_size_limiter")
    _, chain = compile_(a, b, off, unattached, attach=(mine,))
    # priority, then plugin id: model_allowlist < token_rate_limiter
    assert names(chain) == ["mine", "b", "a"]
    assert chain.stages == frozenset({"pre_request", "post_response"})


def test_a_consumer_s_own_policy_replaces_the_global_ones_of_its_plugin() -> None:
    global_one = policy("global", **{"global": True})
    per_minute = policy("per-minute")
    per_day = policy("per-day")
    _, chain = compile_(global_one, attach=(per_minute, per_day))
    assert sorted(names(chain)) == ["per-day", "per-minute"]


def test_a_policy_without_a_runner_on_this_plane_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cached = policy("cache", "semantic_cache", stages=["pre_request"])
    _, chain = compile_(attach=(cached,))
    assert names(chain) == [] and not chain.stages
    assert "not enforced on this plane" in caplog.text


def test_runners_are_kept_while_their_policy_is_unchanged() -> None:
    engine = PolicyEngine(RUNNERS, PolicyDeps())
    p = policy("p")
    c = consumer(p)
    first = engine.compile(GATEWAY, c, {p.id: p}).runners[0]
    assert engine.compile(GATEWAY, c, {p.id: p}).runners[0] is first
    changed = p.model_copy(update={"settings": {"limit": 6, "window": "1m"}})
    assert engine.compile(GATEWAY, c, {p.id: changed}).runners[0] is not first


async def test_parallel_policies_of_one_priority_run_together_and_alone_otherwise() -> None:
    a, b = policy("a"), policy("b", "token_rate_limiter")
    _, chain = compile_(attach=(a, b))
    await chain.run("pre_request", exchange())
    assert Probe.overlapped

    Probe.overlapped = False
    alone = policy("alone", parallel=False)
    _, chain = compile_(attach=(alone, policy("b2", "token_rate_limiter")))
    await chain.run("pre_request", exchange())
    assert not Probe.overlapped


async def test_a_batch_is_split_where_two_would_mutate_the_same_thing() -> None:
    # token_rate_limiter and model_allowlist both rewrite the request body
    a, b = policy("a", "token_rate_limiter"), policy("b", "model_allowlist")
    _, chain = compile_(attach=(a, b))
    await chain.run("pre_request", exchange())
    assert not Probe.overlapped


async def test_the_first_refusal_stops_the_stage_and_is_recorded() -> None:
    first = policy("first", priority=0, do="refuse")
    later = policy("later", "token_rate_limiter", priority=5)
    _, chain = compile_(attach=(first, later))
    x = exchange()
    with pytest.raises(PolicyRejected) as refused:
        await chain.run("pre_request", x)
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert Probe.ran == ["first"]
    [record] = x.records
    assert (record.name, record.stage, record.decision, record.status_code) == (
        "first",
        "pre_request",
        "block",
        429,
    )
    assert x.policies_time > 0


async def test_observe_records_what_it_would_have_done_and_lets_the_call_on() -> None:
    watcher = policy("watch", mode="observe", do="refuse")
    _, chain = compile_(attach=(watcher,))
    x = exchange()
    await chain.run("pre_request", x)
    assert [(r.decision, r.status_code, r.error) for r in x.records] == [
        ("observe", 429, "rate_limited")
    ]


async def test_throttle_is_recorded() -> None:
    _, chain = compile_(attach=(policy("slow", do="throttle"),))
    x = exchange()
    await chain.run("pre_request", x)
    assert x.records[0].decision == "throttle"


async def test_unreachable_counters_fail_open_by_default_and_are_counted() -> None:
    engine, chain = compile_(attach=(policy("p", do="unreachable"),))
    x = exchange()
    await chain.run("pre_request", x)
    assert (x.records[0].decision, x.records[0].error) == ("pass", "counters_unavailable")
    assert engine.failed_open["rate_limiter"] == 1


async def test_fail_closed_answers_rate_limit_unavailable() -> None:
    closed = policy("p", do="unreachable")
    _, chain = compile_(attach=(closed,))
    chain.runners[0].on_error = "fail_closed"  # as its settings' on_error says
    x = exchange()
    with pytest.raises(RateLimitUnavailable) as refused:
        await chain.run("pre_request", x)
    assert refused.value.status == 503 and (b"retry-after", b"1") in refused.value.headers
    assert (x.records[0].decision, x.records[0].status_code) == ("block", 503)


async def test_a_runner_s_bug_fails_open_and_is_recorded() -> None:
    _, chain = compile_(attach=(policy("p", do="bug"),))
    x = exchange()
    await chain.run("pre_request", x)
    assert x.records[0].error == "internal_error"


async def test_post_response_records_a_refusal_and_never_raises() -> None:
    _, chain = compile_(attach=(policy("p", "token_rate_limiter", do="refuse"),))
    x = exchange()
    await chain.run("post_response", x)
    assert Probe.ran == ["p:post"]
    assert x.records[0].decision == "block"


async def test_the_gateway_plan_runs_first() -> None:
    plan_info = PolicyInfo(None, "plan", "gateway_plan", stages=frozenset({"pre_request"}))

    def plan(gateway: Gateway, deps: PolicyDeps) -> Runner:
        return Probe(plan_info, {}, deps)

    engine = PolicyEngine(RUNNERS, PolicyDeps(), gateway_runner=plan)
    p = policy("p", priority=-100)
    metered = GATEWAY.model_copy(update={"entitlements": {"burst_per_min": 5}})
    chain = engine.compile(metered, consumer(p), {p.id: p})
    assert names(chain) == ["plan", "p"]
    assert names(engine.compile(GATEWAY, consumer(p), {p.id: p})) == ["p"]
