"""Why an upstream attempt failed, as the fallback triggers name it, recognised from the
status and the error shapes of OpenAI, Azure OpenAI, Anthropic, Gemini (and Vertex) and
Bedrock.

- ``http_5xx``: a 5xx, or no answer at all (refused, reset, broken);
- ``http_429``: rate limited;
- ``timeout``: the attempt timed out, or the upstream said 408;
- ``provider_error``: a 2xx whose body is an error (``{"error": …}``);
- ``context_window_exceeded``: the prompt does not fit the model (a 400 or 413);
- ``content_filter``: the provider's safety system refused the prompt (a 400) or
  stopped the answer (a 2xx whose finish reason says so).

The 4xx recognisers look for each provider's documented code or message in the (small)
error body; the 2xx ones first look for a marker in the bytes, and decode the body only
when one is there, so a plain answer costs a few substring searches.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

HTTP_5XX: Final = "http_5xx"
HTTP_429: Final = "http_429"
TIMEOUT: Final = "timeout"
PROVIDER_ERROR: Final = "provider_error"
PLUGIN_REJECTION: Final = "plugin_rejection"
CONTEXT_WINDOW: Final = "context_window_exceeded"
CONTENT_FILTER: Final = "content_filter"
TRIGGERS: Final = frozenset(
    {HTTP_5XX, HTTP_429, TIMEOUT, PROVIDER_ERROR, PLUGIN_REJECTION, CONTEXT_WINDOW, CONTENT_FILTER}
)
# failures worth another attempt on the same route (the others only move to the chain)
RETRYABLE_KINDS: Final = frozenset({HTTP_5XX, HTTP_429, TIMEOUT, PROVIDER_ERROR})

# In a 4xx body, lower-cased.
_CONTEXT_MARKERS = (
    b"context_length_exceeded",  # OpenAI, Azure OpenAI (error.code)
    b"maximum context length",  # OpenAI, OpenAI-compatible servers (vLLM, sglang)
    b"exceeds the context window",  # OpenAI Responses
    b"prompt is too long",  # Anthropic, Anthropic on Bedrock
    b"exceed context limit",  # Anthropic: input length and max_tokens exceed context limit
    b"exceeds the maximum number of tokens",  # Gemini, Vertex (INVALID_ARGUMENT)
    b"input is too long",  # Bedrock ValidationException
    b"too many input tokens",  # Bedrock (Mistral, Llama families)
    b"input context length exceeded",  # Bedrock ContextLengthExceededException
)
_FILTER_MARKERS = (
    b'"content_filter"',  # Azure OpenAI (error.code)
    b"responsibleaipolicyviolation",  # Azure OpenAI (innererror.code)
    b"content management policy",  # Azure OpenAI's message
    b"content_policy_violation",  # OpenAI (images), OpenAI-compatible
    b"flagged as potentially violating",  # OpenAI: invalid_prompt
    b"output blocked by content filtering policy",  # Anthropic
    b"blocked by content filtering",
)
# In a 2xx body, as sent (case kept): a finish reason that says the answer was filtered.
_FILTERED_2XX_MARKERS = (
    b"content_filter",  # OpenAI/Azure finish_reason, Responses incomplete_details.reason
    b"refusal",  # Anthropic stop_reason
    b"SAFETY",  # Gemini finishReason / promptFeedback.blockReason
    b"PROHIBITED_CONTENT",
    b"BLOCKLIST",
    b"SPII",
    b"guardrail_intervened",  # Bedrock stopReason
    b"content_filtered",
)
_GEMINI_BLOCKED = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"})
_BEDROCK_BLOCKED = frozenset({"guardrail_intervened", "content_filtered"})


def failure_of_status(status: int, body: bytes | None) -> str | None:
    """The trigger a non-2xx answer matches (``None``: a plain client error, which never
    falls back). ``status`` 0 is no answer."""
    if status >= 500 or status == 0:
        return HTTP_5XX
    if status == 429:
        return HTTP_429
    if status == 408:
        return TIMEOUT
    if body and status in (400, 403, 413, 422):
        low = body[:16384].lower()
        if any(m in low for m in _CONTEXT_MARKERS):
            return CONTEXT_WINDOW
        if any(m in low for m in _FILTER_MARKERS):
            return CONTENT_FILTER
    return None


def _decoded(body: bytes) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def provider_error_in(body: bytes) -> bool:
    """A 2xx whose body is an error object (``{"error": …}``, Anthropic's
    ``{"type": "error"}``) rather than an answer."""
    if b'"error"' not in body:
        return False
    doc = _decoded(body)
    if doc is None:
        return False
    return bool(doc.get("error")) or doc.get("type") == "error"


def filtered_answer(body: bytes) -> bool:
    """A 2xx answer the provider's safety system stopped: OpenAI/Azure
    ``finish_reason: content_filter`` (or a Responses ``incomplete_details.reason``),
    Anthropic ``stop_reason: refusal``, Gemini ``promptFeedback.blockReason`` or a
    ``finishReason`` of SAFETY and kin, Bedrock ``stopReason: guardrail_intervened``."""
    if not any(m in body for m in _FILTERED_2XX_MARKERS):
        return False
    doc = _decoded(body)
    if doc is None:
        return False
    choices = doc.get("choices")
    if isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") == "content_filter" for c in choices
    ):
        return True
    details = doc.get("incomplete_details")
    if isinstance(details, dict) and details.get("reason") == "content_filter":
        return True
    if doc.get("stop_reason") == "refusal" or doc.get("stopReason") in _BEDROCK_BLOCKED:
        return True
    feedback = doc.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        return True
    candidates = doc.get("candidates")
    return isinstance(candidates, list) and any(
        isinstance(c, dict) and c.get("finishReason") in _GEMINI_BLOCKED for c in candidates
    )
