"""The pii runner on its own: requests masked in every text, block refusals in the
client's shape, streams masked whatever the chunk boundaries, restore per call, and
detector failures (the proxy tests drive it through the SDKs)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from trustgate_core import pii
from trustgate_core.errors import PolicyRejected, ValidationFailed
from trustgate_core.ids import uuid7
from trustgate_core.models import Consumer, Gateway
from trustgate_core.models.policy import Mode
from trustgate_core.plugins import validate_policy
from trustgate_core.plugins.pii import PiiSettings
from trustgate_core.policy import PolicyDeps, PolicyExchange, PolicyInfo
from trustgate_core.policy.runners import LLM_RUNNERS
from trustgate_core.policy.runners import pii as runner_module
from trustgate_core.policy.runners.pii import PiiRunner

NOW = datetime.now(UTC)
GW = uuid7()
GATEWAY = Gateway(id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="gw")
CONSUMER = Consumer(id=uuid7(), gateway_id=GW, created_at=NOW, updated_at=NOW, name="c", slug="c")
EMAIL = "jane.doe@example.com"
SSN = "536-22-1234"


class Call(PolicyExchange):
    __slots__ = ("_path",)

    def __init__(self, path: str, doc: dict[str, Any]) -> None:
        super().__init__(GATEWAY, CONSUMER, [])
        self._path = path
        self.doc = doc

    @property
    def path(self) -> str:
        return self._path


def runner(mode: Mode = "enforce", **settings: Any) -> PiiRunner:
    info = PolicyInfo(id=uuid7(), name="pii", plugin="pii", mode=mode)
    return PiiRunner(info, PiiSettings.model_validate(settings), PolicyDeps())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def sse(doc: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(doc) + b"\n\n"


def chat_chunk(text: str) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def chat_text(stream: bytes) -> str:
    out = ""
    for line in stream.split(b"\n"):
        if line.startswith(b"data: {"):
            for choice in orjson.loads(line[6:])["choices"]:
                out += choice["delta"].get("content") or ""
    return out


# --------------------------------------------------------------------------- settings


def test_registered_and_empty_settings_mask_requests() -> None:
    assert "pii" in LLM_RUNNERS
    policy = validate_policy("pii", None, None, {})
    assert policy.stages == ("pre_request",)
    assert policy.settings["action"] == "mask"
    both = validate_policy("pii", None, None, {"apply_to": ["request", "response"]})
    assert both.stages == ("pre_request", "pre_response")


def test_unknown_entities_are_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"settings\.actions: unknown entities"):
        validate_policy("pii", None, None, {"actions": {"no_such_thing": "block"}})


# --------------------------------------------------------------------------- requests


def test_every_text_of_a_chat_request_is_masked() -> None:
    doc = {
        "model": "m",
        "messages": [
            {"role": "system", "content": f"user is {EMAIL}"},
            {"role": "user", "content": [{"type": "text", "text": f"my ssn {SSN}, mail {EMAIL}"}]},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "t", "function": {"name": "f", "arguments": f'{{"to": "{EMAIL}"}}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "t", "content": f"sent to {EMAIL}"},
        ],
    }
    x = Call("/v1/chat/completions", doc)
    run(runner().pre_request(x))
    assert x.dirty
    dumped = orjson.dumps(x.doc).decode()
    assert EMAIL not in dumped and SSN not in dumped
    assert doc["messages"][0]["content"] == "user is <EMAIL_1>"
    assert doc["messages"][1]["content"][0]["text"] == "my ssn <US_SSN_1>, mail <EMAIL_1>"
    assert orjson.loads(doc["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {
        "to": "<EMAIL_1>"
    }


def test_anthropic_blocks_and_responses_input_are_masked() -> None:
    messages = {
        "model": "m",
        "system": [{"type": "text", "text": EMAIL}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": SSN}],
                    }
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": [EMAIL]}}],
            },
        ],
    }
    x = Call("/v1/messages", messages)
    run(runner().pre_request(x))
    assert (
        EMAIL not in orjson.dumps(messages).decode() and SSN not in orjson.dumps(messages).decode()
    )
    responses = {"model": "m", "instructions": EMAIL, "input": [{"role": "user", "content": SSN}]}
    run(runner().pre_request(Call("/v1/responses", responses)))
    assert responses == {
        "model": "m",
        "instructions": "<EMAIL_1>",
        "input": [{"role": "user", "content": "<US_SSN_1>"}],
    }
    plain = {"model": "m", "input": f"write to {EMAIL}"}
    run(runner().pre_request(Call("/v1/responses", plain)))
    assert plain["input"] == "write to <EMAIL_1>"


def test_actions_per_entity_group_and_default() -> None:
    doc = {"messages": [{"role": "user", "content": f"{EMAIL} {SSN}"}]}
    run(
        runner(action="redact", actions={"us": "mask_partial"}).pre_request(
            Call("/v1/chat/completions", doc)
        )
    )
    assert doc["messages"][0]["content"] == " ****1234"  # email removed, SSN's end kept


def test_block_refuses_in_the_clients_shape_with_counts() -> None:
    for path in ("/v1/chat/completions", "/v1/messages"):
        doc = {"messages": [{"role": "user", "content": f"{SSN} and {SSN} to {EMAIL}"}]}
        x = Call(path, doc)
        with pytest.raises(PolicyRejected) as refused:
            run(runner(actions={"us_ssn": "block"}).pre_request(x))
        assert refused.value.status == 422
        body = refused.value.body()
        error = body["error"]
        assert error["entities"] == {"us_ssn": 2}
        assert "us_ssn (2)" in error["message"]
        assert ("type" in body) == (path == "/v1/messages")
        assert SSN not in orjson.dumps(x.doc).decode()  # what telemetry records is masked


def test_observe_changes_nothing() -> None:
    doc = {"messages": [{"role": "user", "content": EMAIL}]}
    with pytest.raises(PolicyRejected) as recorded:
        run(runner("observe").pre_request(Call("/v1/chat/completions", doc)))
    assert recorded.value.status == 0
    assert doc["messages"][0]["content"] == EMAIL


def test_a_detector_error_fails_closed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str, entities: Collection[str] | None = None) -> list[pii.Match]:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner_module, "find", broken)
    doc = {"messages": [{"role": "user", "content": EMAIL}]}
    with pytest.raises(PolicyRejected) as refused:
        run(runner().pre_request(Call("/v1/chat/completions", doc)))
    assert refused.value.status == 503
    run(runner(on_error="fail_open").pre_request(Call("/v1/chat/completions", doc)))
    assert doc["messages"][0]["content"] == EMAIL


# --------------------------------------------------------------------------- responses


def _filter(**settings: Any) -> Any:
    x = Call("/v1/chat/completions", {"messages": []})
    r = runner(**settings)
    run(r.pre_request(x))
    run(r.pre_response(x))
    assert len(x.response_filters) == 1
    return x.response_filters[0]


def test_an_email_split_at_every_offset_never_leaks() -> None:
    text = f"Contact {EMAIL} today, or mail {EMAIL}."
    for first in range(1, len(text)):
        for second in (first + 1, first + 7, len(text)):
            pieces = [text[:first], text[first:second], text[second:]]
            f = _filter(apply_to=["response"])
            out = b"".join(f.feed(sse(chat_chunk(p))) for p in pieces if p) + f.finish()
            got = chat_text(out)
            assert EMAIL not in got, (first, second)
            assert got == "Contact <EMAIL_1> today, or mail <EMAIL_1>."


def test_a_whole_answer_is_masked() -> None:
    f = _filter(apply_to=["response"])
    body = orjson.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": EMAIL}}]}
    )
    assert orjson.loads(f.whole(body))["choices"][0]["message"]["content"] == "<EMAIL_1>"


def test_restore_brings_the_originals_back_per_call() -> None:
    async def one(i: int) -> tuple[str, str]:
        email = f"user{i}@example.com"
        x = Call(
            "/v1/chat/completions", {"messages": [{"role": "user", "content": f"I am {email}"}]}
        )
        r = shared
        await r.pre_request(x)
        sent = x.doc["messages"][0]["content"]
        await r.pre_response(x)
        f = x.response_filters[0]
        await asyncio.sleep(0)
        reply = "Hello <EMA", "IL_1>, done"
        out = b"".join(f.feed(sse(chat_chunk(p))) for p in reply) + f.finish()
        return sent, chat_text(out)

    shared = runner(restore=True)

    async def many() -> list[tuple[str, str]]:
        return await asyncio.gather(*(one(i) for i in range(50)))

    for i, (sent, got) in enumerate(run(many())):
        assert sent == "I am <EMAIL_1>"
        assert got == f"Hello user{i}@example.com, done"


def test_restore_in_tool_call_arguments() -> None:
    x = Call("/v1/chat/completions", {"messages": [{"role": "user", "content": EMAIL}]})
    r = runner(restore=True)
    run(r.pre_request(x))
    run(r.pre_response(x))
    f = x.response_filters[0]
    whole = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "tool_calls": [
                        {"function": {"name": "send", "arguments": '{"to": "<EMAIL_1>"}'}}
                    ]
                },
            }
        ]
    }
    got = orjson.loads(f.whole(orjson.dumps(whole)))
    assert orjson.loads(got["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "to": EMAIL
    }
    pieces = ['{"to": "<', "EMAIL", '_1>"}']
    out = b""
    for p in pieces:
        chunk = {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}}
            ]
        }
        out += f.feed(sse(chunk))
    out += f.finish()
    args = ""
    for line in out.split(b"\n"):
        if line.startswith(b"data: {"):
            for call in orjson.loads(line[6:])["choices"][0]["delta"]["tool_calls"]:
                args += call["function"]["arguments"]
    assert orjson.loads(args) == {"to": EMAIL}


def test_restore_and_response_masking_together_keep_new_entities_masked() -> None:
    x = Call("/v1/chat/completions", {"messages": [{"role": "user", "content": EMAIL}]})
    r = runner(restore=True, apply_to=["request", "response"])
    run(r.pre_request(x))
    run(r.pre_response(x))
    f = x.response_filters[0]
    out = f.feed(sse(chat_chunk("<EMAIL_1> knows other@example.org well enough"))) + f.finish()
    assert chat_text(out) == f"{EMAIL} knows <EMAIL_2> well enough"


def test_held_arguments_are_sent_when_the_call_ends() -> None:
    x = Call("/v1/messages", {"messages": [{"role": "user", "content": EMAIL}]})
    r = runner(restore=True)
    run(r.pre_request(x))
    run(r.pre_response(x))
    f = x.response_filters[0]
    pieces = ['{"to": "<EM', 'AIL_1>", "tag": "<NOT', '"}']
    out = b"".join(
        f.feed(
            sse(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": p},
                },
                "content_block_delta",
            )
        )
        for p in pieces
    )
    out += (
        f.feed(sse({"type": "content_block_stop", "index": 1}, "content_block_stop")) + f.finish()
    )
    args = ""
    for line in out.split(b"\n"):
        if line.startswith(b"data: {"):
            delta = orjson.loads(line[6:]).get("delta") or {}
            args += delta.get("partial_json", "")
    assert orjson.loads(args) == {"to": EMAIL, "tag": "<NOT"}
    assert out.rstrip().endswith(b'"content_block_stop","index":1}')


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("4111 1111 1111 1111", "<CREDIT_CARD_1>"),  # spaces inside: no whitespace cut helps
        ("passport number is 123456789", "passport number is <US_PASSPORT_1>"),  # keyword
    ],
)
def test_a_spaced_or_keyword_entity_split_anywhere_never_leaks(
    value: str, placeholder: str
) -> None:
    pad = "words before it, long enough to be sent ahead of the rest"
    text = f"{pad}: {value} ok"
    secret = value.split()[-1] if "passport" in value else value
    for first in range(1, len(text)):
        f = _filter(apply_to=["response"])
        out = f.feed(sse(chat_chunk(text[:first]))) + f.feed(sse(chat_chunk(text[first:])))
        got = chat_text(out + f.finish())
        assert secret not in got, first
        assert got == f"{pad}: {placeholder} ok"
