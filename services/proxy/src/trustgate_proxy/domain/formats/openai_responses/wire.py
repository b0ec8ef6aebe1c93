"""The Responses API's shapes shared by its codecs: usage both ways, statuses and finish
reasons, ids, the Response object, output text parts and reasoning items (with other
providers' reasoning state carried in ``encrypted_content``), error messages.
"""

from __future__ import annotations

import uuid
from typing import Any

from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.domain.formats.common import as_int
from trustgate_proxy.domain.formats.model import FinishReason, Thinking, Usage

FORMAT: WireFormat = "openai_responses"


STATELESS_HINT = (
    "; the route's provider does not speak the Responses API, so send the whole "
    "conversation in `input` instead"
)


def usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    usage = Usage(
        input_tokens=as_int(raw.get("input_tokens")) or 0,
        output_tokens=as_int(raw.get("output_tokens")) or 0,
    )
    details = raw.get("input_tokens_details")
    if isinstance(details, dict):
        usage.cached_input_tokens = as_int(details.get("cached_tokens"))
        usage.cache_write_tokens = as_int(details.get("cache_write_tokens"))
    details = raw.get("output_tokens_details")
    if isinstance(details, dict):
        usage.reasoning_tokens = as_int(details.get("reasoning_tokens"))
    return usage


def usage_doc(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens or 0,
            "cache_write_tokens": usage.cache_write_tokens or 0,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def incomplete_finish(doc: dict[str, Any]) -> FinishReason:
    details = doc.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    return "content_filter" if reason == "content_filter" else "length"


def _summary_text(item: dict[str, Any]) -> str:
    """A reasoning item's visible text: its summary parts (or its raw reasoning text)."""
    parts = item.get("summary") or item.get("content") or []
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "\n\n".join(texts)


# Another provider's reasoning state (an Anthropic/Bedrock/Gemini signature, Anthropic's
# redacted thinking), given to a Responses client in the reasoning item's opaque
# ``encrypted_content`` and recognised when the client sends the item back, so a later turn
# (a tool result after thinking) reaches that provider with it intact.
SIGNED = "trustgate.signature:"


_REDACTED = "trustgate.redacted:"


def _opaque(thinking: Thinking) -> str | None:
    """A reasoning item's ``encrypted_content`` for ``thinking``."""
    if thinking.redacted:
        return _REDACTED + thinking.data if thinking.data is not None else None
    if thinking.signature is not None:
        return SIGNED + thinking.signature
    return thinking.data


def thinking_of(item: dict[str, Any]) -> Thinking:
    """A reasoning item as a ``Thinking`` block (see ``_opaque``)."""
    encrypted = item.get("encrypted_content")
    raw_id = item.get("id")
    item_id = raw_id if isinstance(raw_id, str) else None
    text = _summary_text(item)
    if not isinstance(encrypted, str):
        return Thinking(text, id=item_id)
    if encrypted.startswith(SIGNED):
        return Thinking(text, signature=encrypted[len(SIGNED) :], id=item_id)
    if encrypted.startswith(_REDACTED):
        return Thinking(redacted=True, data=encrypted[len(_REDACTED) :], id=item_id)
    return Thinking(text, data=encrypted, id=item_id)


def response_id_of(raw: str | None) -> str:
    if raw and raw.startswith("resp_"):
        return raw
    if raw:
        core = "".join(c for c in raw if c.isalnum())
        if core:
            return "resp_" + core
    return "resp_" + uuid.uuid4().hex


def item_id_for(response_id: str, kind: str, index: int) -> str:
    return f"{kind}_{response_id.removeprefix('resp_')}_{index}"


def status_of(finish: FinishReason) -> tuple[str, dict[str, Any] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    if finish == "error":
        return "failed", None
    return "completed", None


def response_doc(
    response_id: str,
    model: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    incomplete: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response object as the API returns it (fields a stateless gateway cannot know
    take the API's defaults)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": (
            {"code": "server_error", "message": "the provider ended the answer with an error"}
            if status == "failed"
            else None
        ),
        "incomplete_details": incomplete,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": usage_doc(usage),
        "user": None,
        "metadata": {},
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def reasoning_item(item_id: str, thinking: Thinking | None, text: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if text else [],
    }
    opaque = _opaque(thinking) if thinking is not None else None
    if opaque is not None:
        item["encrypted_content"] = opaque
    return item
