"""The cache keys the proxy computes from the body the upstream is sent: every field of
it that can change the answer changes the exact key (nested ones, and the ones the
format codecs drop, included); JSON key order, the delivery mode and who asks do not;
the filter key ignores the conversation's text only, so an image, a file, audio, a tool
call or a tool result is a hard filter."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from trustgate_core.cache.keys import exact_key, filter_key
from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.services.cache import request_keys

CHAT: dict[str, Any] = {
    "model": "m",
    "max_tokens": 64,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Summarise this."}]},
    ],
}
MESSAGES: dict[str, Any] = {
    "model": "m",
    "max_tokens": 64,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Summarise this."}]}],
}
RESPONSES: dict[str, Any] = {
    "model": "m",
    "max_output_tokens": 64,
    "instructions": "Be brief.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "Summarise this."}]}],
}
BASES: dict[WireFormat, dict[str, Any]] = {
    "openai_chat": CHAT,
    "anthropic": MESSAGES,
    "openai_responses": RESPONSES,
}


def keys(fmt: WireFormat, doc: dict[str, Any], model: str | None = None) -> tuple[str, str]:
    got = request_keys(fmt, doc, model)
    return exact_key(got.exact), filter_key(got.without_text)


def changed(fmt: WireFormat, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(BASES[fmt])
    edit(doc)
    return doc


def _part(doc: dict[str, Any], part: dict[str, Any]) -> None:
    doc["messages"][-1]["content"].append(part)


PDF_A = {
    "type": "file",
    "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,QQ=="},
}
PDF_B = {
    "type": "file",
    "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,Qg=="},
}

# (format, the change): each must change the exact key
CHANGES: list[tuple[WireFormat, str, Callable[[dict[str, Any]], None]]] = [
    ("openai_chat", "model", lambda d: d.update(model="m2")),
    ("openai_chat", "temperature", lambda d: d.update(temperature=0.2)),
    ("openai_chat", "top_p", lambda d: d.update(top_p=0.9)),
    ("openai_chat", "max_tokens", lambda d: d.update(max_tokens=65)),
    ("openai_chat", "stop", lambda d: d.update(stop=["\n"])),
    ("openai_chat", "seed", lambda d: d.update(seed=1)),
    ("openai_chat", "n", lambda d: d.update(n=1)),
    (
        "openai_chat",
        "tools",
        lambda d: d.update(
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]
        ),
    ),
    ("openai_chat", "tool_choice", lambda d: d.update(tool_choice="none")),
    ("openai_chat", "response_format", lambda d: d.update(response_format={"type": "json_object"})),
    ("openai_chat", "logprobs", lambda d: d.update(logprobs=True)),
    ("openai_chat", "system prompt", lambda d: d["messages"][0].update(content="Be long.")),
    ("openai_chat", "a file part", lambda d: _part(d, PDF_A)),
    (
        "openai_chat",
        "an input_audio part",
        lambda d: _part(
            d, {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}
        ),
    ),
    ("openai_chat", "messages[].name", lambda d: d["messages"][1].update(name="alice")),
    ("openai_chat", "an unknown nested field", lambda d: d["messages"][1].update(x_hint={"a": 1})),
    (
        "anthropic",
        "thinking",
        lambda d: d.update(thinking={"type": "enabled", "budget_tokens": 1024}),
    ),
    (
        "anthropic",
        "a document block",
        lambda d: _part(
            d,
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "x"},
            },
        ),
    ),
    ("openai_responses", "text.verbosity", lambda d: d.update(text={"verbosity": "low"})),
    (
        "openai_responses",
        "reasoning.summary",
        lambda d: d.update(reasoning={"effort": "low", "summary": "auto"}),
    ),
    (
        "openai_responses",
        "tool_choice.tools",
        lambda d: d.update(
            tool_choice={
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "f"}],
            }
        ),
    ),
    ("openai_responses", "instructions", lambda d: d.update(instructions="Be long.")),
    ("openai_responses", "previous_response_id", lambda d: d.update(previous_response_id="resp_1")),
]


@pytest.mark.parametrize(("fmt", "what", "edit"), CHANGES, ids=[f"{c[0]}:{c[1]}" for c in CHANGES])
def test_each_field_that_can_change_the_answer_changes_the_exact_key(
    fmt: WireFormat, what: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    assert keys(fmt, changed(fmt, edit))[0] != keys(fmt, BASES[fmt])[0]


def test_two_files_differ_and_a_default_model_is_keyed() -> None:
    a = changed("openai_chat", lambda d: _part(d, PDF_A))
    b = changed("openai_chat", lambda d: _part(d, PDF_B))
    assert keys("openai_chat", a)[0] != keys("openai_chat", b)[0]
    no_model = {k: v for k, v in CHAT.items() if k != "model"}
    assert keys("openai_chat", no_model, "m") == keys("openai_chat", CHAT)
    assert keys("openai_chat", no_model, "m2") != keys("openai_chat", CHAT)


@pytest.mark.parametrize("fmt", list(BASES))
def test_key_order_the_mode_and_who_asks_do_not_change_the_keys(fmt: WireFormat) -> None:
    base = BASES[fmt]

    def reorder(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reorder(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reorder(v) for v in value]
        return value

    assert keys(fmt, reorder(base)) == keys(fmt, base)
    quiet = {
        **base,
        "stream": True,
        "user": "u-1",
        "metadata": {"user_id": "u-1"},
        "store": False,
    }
    assert keys(fmt, quiet) == keys(fmt, base)
    assert keys(fmt, {**base, "temperature": 1}) == keys(fmt, {**base, "temperature": 1.0})


def test_the_formats_key_apart() -> None:
    assert len({keys(fmt, doc)[0] for fmt, doc in BASES.items()}) == 3


@pytest.mark.parametrize("fmt", list(BASES))
def test_the_filter_key_ignores_the_text_and_nothing_else(fmt: WireFormat) -> None:
    def reworded(doc: dict[str, Any]) -> None:
        items = doc["input"] if fmt == "openai_responses" else doc["messages"]
        items[-1]["content"][0]["text"] = "Give me the gist."

    other = changed(fmt, reworded)
    assert keys(fmt, other)[1] == keys(fmt, BASES[fmt])[1]
    assert keys(fmt, other)[0] != keys(fmt, BASES[fmt])[0]
    assert keys(fmt, {**BASES[fmt], "temperature": 1})[1] != keys(fmt, BASES[fmt])[1]
    text = request_keys(fmt, BASES[fmt], None).text
    assert text == "Be brief.\nuser: Summarise this."


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def test_images_files_and_tool_results_are_a_hard_filter() -> None:
    """Same text, another image, file or tool result: another filter key, so no
    semantic match at similarity 1.0 can serve the other one's answer."""
    cat = changed("openai_chat", lambda d: _part(d, _image("https://x/cat.png")))
    dog = changed("openai_chat", lambda d: _part(d, _image("https://x/dog.png")))
    assert (
        request_keys("openai_chat", cat, None).text == request_keys("openai_chat", dog, None).text
    )
    assert keys("openai_chat", cat)[1] != keys("openai_chat", dog)[1]
    a = changed("openai_chat", lambda d: _part(d, PDF_A))
    b = changed("openai_chat", lambda d: _part(d, PDF_B))
    assert keys("openai_chat", a)[1] != keys("openai_chat", b)[1]

    def with_result(result: str) -> dict[str, Any]:
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        return changed(
            "openai_chat",
            lambda d: d["messages"].extend(
                [
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "c1", "content": result},
                ]
            ),
        )

    assert (
        keys("openai_chat", with_result("sunny"))[1] != keys("openai_chat", with_result("rain"))[1]
    )
    anthropic_image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
    }
    other_image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AB"},
    }
    m1 = changed("anthropic", lambda d: _part(d, anthropic_image))
    m2 = changed("anthropic", lambda d: _part(d, other_image))
    assert keys("anthropic", m1)[1] != keys("anthropic", m2)[1]

    def responses_with(url: str) -> dict[str, Any]:
        return changed(
            "openai_responses",
            lambda d: d["input"][-1]["content"].append({"type": "input_image", "image_url": url}),
        )

    assert (
        keys("openai_responses", responses_with("https://x/a"))[1]
        != (keys("openai_responses", responses_with("https://x/b"))[1])
    )
