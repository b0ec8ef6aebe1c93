"""The one health/readiness/metrics app every plane serves, called as ASGI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from trustgate_core.service import HealthApp
from trustgate_core.service.asgi import SECURITY_HEADERS


class Reply:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start, body = messages
        self.status: int = start["status"]
        self.headers = dict(start["headers"])
        self.body: bytes = body["body"]

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(app: HealthApp, path: str, method: str = "GET") -> Reply:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        messages.append(dict(message))

    await app({"type": "http", "method": method, "path": path, "headers": []}, receive, send)
    return Reply(messages)


def app(ready: bool = True) -> HealthApp:
    return HealthApp(
        "trustgate-test",
        "1.2.3",
        is_ready=lambda: ready,
        dependencies=lambda: {"nats": "ok", "config": "ok" if ready else "unavailable"},
        metrics=lambda: (b"# HELP x\nx 1.0\n", "text/plain; version=0.0.4; charset=utf-8"),
    )


async def test_healthz_and_health_say_healthy_with_service_version_and_time() -> None:
    for path in ("/healthz", "/health", "/healthz/"):
        reply = await call(app(ready=False), path)  # alive even when not ready
        assert reply.status == 200
        doc = reply.json()
        assert set(doc) == {"status", "service", "version", "time"}
        assert (doc["status"], doc["service"], doc["version"]) == (
            "healthy",
            "trustgate-test",
            "1.2.3",
        )
        assert datetime.fromisoformat(doc["time"]).tzinfo is not None
        assert reply.headers[b"content-type"] == b"application/json"


async def test_readyz_is_200_when_ready_and_503_when_not_with_the_dependencies() -> None:
    ready = await call(app(ready=True), "/readyz")
    assert ready.status == 200
    doc = ready.json()
    assert set(doc) == {"status", "service", "version", "time", "dependencies"}
    assert (doc["status"], doc["dependencies"]) == ("ready", {"nats": "ok", "config": "ok"})

    not_ready = await call(app(ready=False), "/readyz")
    assert not_ready.status == 503
    doc = not_ready.json()
    assert doc["status"] == "not_ready"
    assert doc["dependencies"] == {"nats": "ok", "config": "unavailable"}
    assert (doc["service"], doc["version"]) == ("trustgate-test", "1.2.3")


async def test_metrics_is_the_prometheus_page_with_its_content_type() -> None:
    reply = await call(app(), "/metrics")
    assert reply.status == 200
    assert reply.body == b"# HELP x\nx 1.0\n"
    assert reply.headers[b"content-type"].startswith(b"text/plain; version=0.0.4")


async def test_head_sends_the_headers_without_a_body() -> None:
    get, head = await call(app(), "/metrics"), await call(app(), "/metrics", "HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers[b"content-length"] == get.headers[b"content-length"]


async def test_other_paths_are_404_and_other_methods_405_with_allow() -> None:
    missing = await call(app(), "/nope")
    assert missing.status == 404
    assert missing.json()["error"] == "not_found" and missing.json()["message"]

    post = await call(app(), "/readyz", "POST")
    assert post.status == 405
    assert post.json()["error"] == "method_not_allowed"
    assert post.headers[b"allow"] == b"GET, HEAD"


async def test_every_response_carries_the_security_headers() -> None:
    for path, method in (("/healthz", "GET"), ("/readyz", "GET"), ("/metrics", "GET")):
        reply = await call(app(), path, method)
        for name, value in SECURITY_HEADERS:
            assert reply.headers[name] == value, (path, name)
    for path, method in (("/nope", "GET"), ("/healthz", "DELETE")):
        reply = await call(app(), path, method)
        assert reply.headers[b"x-content-type-options"] == b"nosniff"


def test_handles_names_exactly_the_system_paths() -> None:
    health = app()
    assert all(health.handles(p) for p in ("/healthz", "/health", "/readyz", "/metrics"))
    assert health.handles("/readyz/")
    assert not any(health.handles(p) for p in ("/", "/v1/models", "/app/v1/chat/completions"))


async def test_the_traffic_port_app_answers_metrics_404_and_keeps_the_probes() -> None:
    traffic = app().for_traffic()
    reply = await call(traffic, "/metrics")
    assert reply.status == 404
    assert reply.json()["error"] == "not_found"
    assert b"x 1.0" not in reply.body
    assert not traffic.handles("/metrics")
    assert (await call(traffic, "/healthz")).status == 200
    assert (await call(traffic, "/readyz")).status == 200
    assert (await call(app(), "/metrics")).status == 200  # the operations port's app
