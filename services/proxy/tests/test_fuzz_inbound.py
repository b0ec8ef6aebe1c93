"""A hypothesis fuzz of the proxy's inbound routes: random bodies (JSON of every shape,
deep, wide, huge integers, NUL, invalid UTF-8, bytes that are not JSON, any content type)
and random headers, sent to an in-process proxy over HTTP, each request with a deadline.

Whatever arrives, the proxy answers: never a 5xx unless the upstream failed (then the
call's attempts say so; the proxy's own error is never a 500), and every error is a JSON
body in the route's shape (Anthropic's on ``/v1/messages``; ``error`` on the others).

Derandomized and bounded (a minute or so in all), so a CI run is reproducible; the proxy
and its mock upstreams run on their own event loop in a thread, and the examples drive it
from this one with a blocking client.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustgate_proxy.domain.call import Call
from trustgate_testkit.proxy.local import LocalProxy, local_proxy
from trustgate_testkit.proxy.mock_anthropic import ANTHROPIC_KEY, serve_anthropic
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.tenant import Tenant

POSTS = ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/embeddings"]
ANTHROPIC_ROUTES = ("/v1/messages",)
REQUEST_DEADLINE = 15.0  # seconds: an answer, or the example fails
FUZZ = settings(
    derandomize=True,  # the same examples on every run: a CI failure reproduces
    database=None,
    deadline=None,  # the per-request deadline is the client's timeout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Served:
    """The proxy in process with two consumers — ``openai`` (the OpenAI mock) and
    ``claude`` (the Anthropic mock) — on an event loop of its own thread."""

    def __init__(self) -> None:
        self.proxy: LocalProxy
        self.tenant: Tenant
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzzed-proxy", daemon=True)

    def __enter__(self) -> Served:
        self._thread.start()
        if not self._ready.wait(30) or self._failure is not None:
            raise RuntimeError("the fuzzed proxy did not start") from self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_mock("openai") as gpt, serve_anthropic("anthropic") as claude:
            async with local_proxy(PROVIDER_REQUEST_TIMEOUT="3s") as proxy:
                tenant = await proxy.new_tenant()
                await tenant.add_registry("gpt", gpt.url)
                await tenant.add_registry(
                    "claude", claude.url, provider="anthropic", api_key=ANTHROPIC_KEY
                )
                await tenant.add_consumer("openai", ["gpt"])
                await tenant.add_consumer("claude", ["claude"])
                self.proxy, self.tenant = proxy, tenant
                self._ready.set()
                await self._stop.wait()

    def call(self, trace_id: str) -> Call:
        """The finished call of a response (it is recorded just after the answer)."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            calls = self.proxy.calls(trace_id)
            if calls:
                return calls[0]
            time.sleep(0.01)  # another thread records it: polled, with a deadline
        raise AssertionError(f"no call recorded for trace {trace_id}")


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with Served() as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=REQUEST_DEADLINE) as client:
        yield client


# -- what is sent --------------------------------------------------------------------------
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)  # beyond 64 bits
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # NUL and lone surrogates included
)
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)


_depths = st.sampled_from([2, 64, 128, 129, 253, 254, 255, 300, 1024, 1025]) | st.integers(1, 1100)


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A value nested up to 1100 levels, around the limits most often (orjson writes 254
    levels at most and reads 1024; the proxy's own limit is 128)."""
    value: Any = draw(_scalars)
    in_objects = draw(st.booleans())
    for _ in range(draw(_depths) - 1):
        value = {"k": value} if in_objects else [value]
    return value


_roles = st.sampled_from(["user", "assistant", "system", "tool", "developer"]) | st.text()
_messages = st.lists(
    st.fixed_dictionaries(
        {"role": _roles, "content": st.text() | json_values},
        optional={"tool_call_id": json_values, "name": json_values, "tool_calls": json_values},
    ),
    max_size=4,
)
# close to what clients send, so the fuzz reaches the codecs and translations
requests = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", "gpt-4o-mini", "claude-haiku-4-5"]) | st.text()},
    optional={
        "messages": _messages | json_values,
        "input": st.text() | json_values,
        "max_tokens": st.integers(min_value=-5, max_value=10**30) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "system": json_values,
        "temperature": json_values,
        "metadata": nested(),
    },
)


def _encode(value: Any) -> bytes:
    """JSON as a client may write it (stdlib: big integers, surrogates as escapes)."""
    return json.dumps(value).encode()


# deep where the proxy re-serialises: a passed-through stream, a tool it translates
deep_requests = st.fixed_dictionaries(
    {
        "model": st.just("m"),
        "messages": st.just([{"role": "user", "content": "x"}]),
        "stream": st.booleans(),
        "metadata": nested(),
        "tools": nested().map(
            lambda deep: [
                {
                    "type": "function",
                    "name": "f",
                    "input_schema": {"type": "object", "properties": {"a": {"default": deep}}},
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": {"a": {"default": deep}}},
                    },
                }
            ]
        ),
    }
)
bodies = st.one_of(
    requests.map(_encode),
    deep_requests.map(_encode),
    json_values.map(_encode),
    nested().map(_encode),
    st.binary(max_size=300),  # not JSON, invalid UTF-8
    requests.map(_encode).map(lambda b: b.replace(b'"m"', b'"m\\u0000"')),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
)
_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
_header_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
).map(lambda v: v.strip(" \t"))  # HTTP trims it; h11 will not send it
extra_headers = st.dictionaries(_token.map(lambda n: f"x-{n}"), _header_value, max_size=5)
auth_headers = st.fixed_dictionaries(
    {},
    optional={
        "x-ag-gateway-slug": _header_value,
        "x-ag-api-key": _header_value,
        "x-api-key": _header_value,
        "authorization": _header_value,
        "host": _header_value,
    },
)


# -- what must come back -------------------------------------------------------------------
def check_answer(served: Served, route: str, resp: httpx.Response) -> None:
    """Never the proxy's own 500; another 5xx only for an upstream that failed; the
    proxy's errors are JSON in the route's shape (an upstream's own error is relayed as it
    came: the mock upstreams answer some odd bodies with a text 500)."""
    if resp.status_code < 400:
        return
    call = served.call(resp.headers["x-ag-trace-id"])
    assert call.error_kind != "internal_error", resp.text
    if resp.status_code >= 500:
        failed = [a for a in call.attempts if a.status == 0 or a.status >= 500]
        assert failed or call.status == 503, (resp.status_code, resp.text)
    if call.error_kind == "upstream_status":
        return
    assert resp.headers["content-type"] == "application/json", resp.headers
    body = resp.json()
    assert isinstance(body, dict), resp.text
    if route.startswith(ANTHROPIC_ROUTES):
        assert body.get("type") == "error", resp.text
        assert isinstance(body["error"]["type"], str), resp.text
        assert isinstance(body["error"]["message"], str), resp.text
    else:
        assert "error" in body, resp.text


def _latin1(headers: dict[str, str]) -> dict[bytes, bytes]:
    """Headers as bytes on the wire (values any of ISO-8859-1, as HTTP allows)."""
    return {name.encode(): value.encode("latin-1") for name, value in headers.items()}


def _url(served: Served, consumer: str, route: str) -> str:
    return f"{served.proxy.url}/{served.tenant.consumers[consumer].slug}{route}"


def _authenticated(served: Served, consumer: str) -> dict[str, str]:
    return {"x-ag-gateway-slug": served.tenant.slug, "x-ag-api-key": served.tenant.keys[consumer]}


@settings(FUZZ, max_examples=400)
@given(
    route=st.sampled_from(POSTS),
    consumer=st.sampled_from(["openai", "claude"]),
    body=bodies,
    content_type=content_types,
    headers=extra_headers,
)
def test_any_body_on_any_route_gets_an_answer_in_the_routes_error_shape(
    served: Served,
    http: httpx.Client,
    route: str,
    consumer: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str],
) -> None:
    sent = {**headers, **_authenticated(served, consumer), "content-type": content_type}
    resp = http.post(_url(served, consumer, route), content=body, headers=_latin1(sent))
    check_answer(served, route, resp)


@settings(FUZZ, max_examples=300)
@given(
    route=st.sampled_from([*POSTS, "/v1/models"]),
    consumer=st.sampled_from(["openai", "claude"]),
    auth=auth_headers,
    headers=extra_headers,
    authenticated=st.booleans(),
)
def test_any_headers_on_any_route_get_an_answer_in_the_routes_error_shape(
    served: Served,
    http: httpx.Client,
    route: str,
    consumer: str,
    auth: dict[str, str],
    headers: dict[str, str],
    authenticated: bool,
) -> None:
    sent = {**headers, **(_authenticated(served, consumer) if authenticated else {}), **auth}
    body = _encode({"model": "m", "messages": [{"role": "user", "content": "x"}], "input": "x"})
    method = "GET" if route == "/v1/models" else "POST"
    resp = http.request(method, _url(served, consumer, route), content=body, headers=_latin1(sent))
    check_answer(served, route, resp)
