"""The pipeline's seams, on the in-process proxy: a router that orders several attempts
(a retryable failure is retried before the client sees a byte, a terminal one is
relayed), every attempt recorded on the call, and policy stages that run around the
upstream call, may answer it themselves, or refuse it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from trustgate_core.errors import Forbidden
from trustgate_core.models import Consumer
from trustgate_core.models.policy import Stage
from trustgate_proxy.domain.exchange import Answer, Exchange
from trustgate_proxy.domain.routing import (
    RETRYABLE,
    Candidates,
    OneAttempt,
    Route,
    RoutingConfig,
)
from trustgate_proxy.services.ports import Chain
from trustgate_testkit.proxy.local import LocalProxy, local_proxy
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.sdk_clients import tracked

REFUSED = "http://127.0.0.1:9/v1"  # discard port: nothing listens, the connect is refused


class EveryRoute:
    """Tries every candidate in order until one does not end retryably (the shape of a
    fallback chain)."""

    def __init__(self, config: RoutingConfig) -> None:
        self.reports: list[tuple[str, str]] = []

    def attempts(self, candidates: Candidates, exchange: Exchange) -> EveryAttempt:
        return EveryAttempt(self, list(candidates.routes))


class EveryAttempt(OneAttempt):
    """The candidates in order, each reported to the router, until one does not end
    retryably (outcomes as the proxy's single attempt classifies them)."""

    def __init__(self, router: EveryRoute, routes: list[Route]) -> None:
        super().__init__(routes[0])
        self.router = router
        self.rest = routes[1:]
        self.done = False

    async def next(self) -> Route | None:
        route = await super().next()
        if route is None and not self.done and self.rest:
            self._route = self.rest.pop(0)
            route = await super().next()
        return route

    def report(
        self,
        route: Route,
        status: int,
        body: bytes | None,
        timed_out: bool,
        retry_after: float | None,
        latency: float,
    ) -> str:
        outcome = super().report(route, status, body, timed_out, retry_after, latency)
        self.router.reports.append((route.binding.registry.name, outcome))
        self.done = outcome != RETRYABLE
        return outcome


class Recorded:
    """A chain with work at ``stages``; ``answer_with`` answers at pre_request,
    ``refuse`` raises there."""

    def __init__(
        self,
        stages: frozenset[Stage],
        *,
        answer_with: bytes | None = None,
        refuse: bool = False,
    ) -> None:
        self.stages = stages
        self.ran: list[Stage] = []
        self.answer_with = answer_with
        self.refuse = refuse

    async def run(self, stage: Stage, exchange: Exchange) -> None:
        self.ran.append(stage)
        if stage == "pre_request" and self.refuse:
            raise Forbidden("blocked by policy")
        if stage == "pre_request" and self.answer_with is not None:
            exchange.answer = Answer(200, self.answer_with, [(b"x-cache", b"hit")])


def client(proxy: LocalProxy, tenant: Any, consumer: Consumer) -> AsyncOpenAI:
    return tracked(
        AsyncOpenAI(
            base_url=proxy.base_url(consumer),
            api_key="unused",
            default_headers={"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]},
            max_retries=0,
        )
    )


async def one_route(proxy: LocalProxy, upstream: MockUpstream) -> Any:
    """A tenant whose consumer ``app`` routes to ``upstream`` alone."""
    tenant = await proxy.new_tenant()
    await tenant.add_registry("up", upstream.url)
    await tenant.add_consumer("app", ["up"])
    return tenant


async def post_chat(proxy: LocalProxy, tenant: Any, model: str = "m") -> httpx.Response:
    url = f"{proxy.url}/{tenant.consumers['app'].slug}/v1/chat/completions"
    headers = {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]}
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient() as http:
        return await http.post(url, headers=headers, json=body)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failed_attempt_is_retried_on_the_next_route_before_the_client_sees_it(
    upstream: MockUpstream, stream: bool
) -> None:
    routers: list[EveryRoute] = []

    def router(config: RoutingConfig) -> EveryRoute:
        routers.append(EveryRoute(config))
        return routers[-1]

    async with local_proxy(router=router) as proxy:
        tenant = await proxy.new_tenant()
        await tenant.add_registry("down", REFUSED)
        await tenant.add_registry("up", upstream.url)
        consumer = await tenant.add_consumer("app", ["down", "up"])
        sdk = client(proxy, tenant, consumer)
        if stream:
            chunks = await sdk.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            answer = await sdk.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            text = answer.choices[0].message.content or ""
        assert text  # the second route served it
        (call,) = proxy.sink.calls
        assert call.status == 200 and call.error_kind is None
        assert [(a.outcome, a.status) for a in call.attempts] == [
            ("retryable", 0),
            ("success", 200),
        ]
        assert [a.registry_id for a in call.attempts] == [
            tenant.registries["down"].id,
            tenant.registries["up"].id,
        ]
        assert call.registry_id == tenant.registries["up"].id
        assert routers[-1].reports == [("down", "retryable"), ("up", "success")]


async def test_a_terminal_answer_is_relayed_without_another_attempt(
    upstream: MockUpstream,
) -> None:
    async with local_proxy(router=EveryRoute) as proxy:
        tenant = await proxy.new_tenant()
        await tenant.add_registry("bad-key", upstream.url, api_key="sk-wrong")
        await tenant.add_registry("good", upstream.url)
        await tenant.add_consumer("app", ["bad-key", "good"])
        resp = await post_chat(proxy, tenant)
        assert resp.status_code == 401  # the upstream's own answer, relayed
        (call,) = proxy.sink.calls
        assert [(a.outcome, a.status) for a in call.attempts] == [("terminal", 401)]
        assert len(upstream.requests) == 1


async def test_when_every_attempt_fails_the_last_answer_is_relayed(
    upstream: MockUpstream,
) -> None:
    async with local_proxy(router=EveryRoute) as proxy:
        tenant = await proxy.new_tenant()
        await tenant.add_registry("a", upstream.url)
        await tenant.add_registry("b", upstream.url)
        await tenant.add_consumer("app", ["a", "b"])
        resp = await post_chat(proxy, tenant, "gpt-4o-mini-ratelimited")
        assert resp.status_code == 429 and resp.headers.get("retry-after")
        (call,) = proxy.sink.calls
        assert [a.outcome for a in call.attempts] == ["retryable", "retryable"]
        assert call.error_kind == "upstream_status"


async def test_policy_stages_run_in_order_around_the_upstream_call(
    upstream: MockUpstream,
) -> None:
    chains: list[Recorded] = []

    def compile_chain(consumer: Consumer) -> Chain:
        chains.append(
            Recorded(frozenset({"pre_request", "post_request", "pre_response", "post_response"}))
        )
        return chains[-1]

    async with local_proxy(chain=compile_chain) as proxy:
        tenant = await one_route(proxy, upstream)
        resp = await post_chat(proxy, tenant)
        assert resp.status_code == 200
        assert chains[-1].ran == ["pre_request", "post_request", "pre_response", "post_response"]


async def test_a_pre_request_policy_can_answer_without_calling_the_upstream(
    upstream: MockUpstream,
) -> None:
    cached = b'{"cached":true}'
    async with local_proxy(
        chain=lambda consumer: Recorded(frozenset({"pre_request"}), answer_with=cached)
    ) as proxy:
        tenant = await one_route(proxy, upstream)
        resp = await post_chat(proxy, tenant)
        assert resp.status_code == 200 and resp.content == cached
        assert resp.headers["x-cache"] == "hit" and resp.headers["x-ag-trace-id"]
        assert upstream.requests == []
        (call,) = proxy.sink.calls
        assert call.status == 200 and call.attempts == []


async def test_a_policy_refusal_is_the_clients_error_and_nothing_goes_upstream(
    upstream: MockUpstream,
) -> None:
    async with local_proxy(
        chain=lambda consumer: Recorded(frozenset({"pre_request"}), refuse=True)
    ) as proxy:
        tenant = await one_route(proxy, upstream)
        resp = await post_chat(proxy, tenant)
        assert resp.status_code == 403
        assert resp.json() == {"error": "forbidden", "message": "blocked by policy"}
        assert upstream.requests == []
        (call,) = proxy.sink.calls
        assert call.status == 403 and call.error_kind == "forbidden"


async def test_a_translated_request_is_retried_on_the_next_route_too(
    upstream: MockUpstream,
) -> None:
    async with local_proxy(router=EveryRoute) as proxy:
        tenant = await proxy.new_tenant()
        await tenant.add_registry("down", REFUSED)
        await tenant.add_registry("up", upstream.url)
        await tenant.add_consumer("app", ["down", "up"])
        url = f"{proxy.url}/{tenant.consumers['app'].slug}/v1/messages"
        headers = {"X-AG-Gateway-Slug": tenant.slug, "X-AG-API-Key": tenant.keys["app"]}
        body = {
            "model": "gpt-4o-mini",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
        }
        async with httpx.AsyncClient() as http:
            resp = await http.post(url, headers=headers, json=body)
        assert resp.status_code == 200 and resp.json()["type"] == "message"
        (call,) = proxy.sink.calls
        assert [(a.outcome, a.status) for a in call.attempts] == [
            ("retryable", 0),
            ("success", 200),
        ]
        assert len(upstream.requests) == 1
