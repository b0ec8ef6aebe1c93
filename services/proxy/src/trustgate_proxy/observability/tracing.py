"""Spans of proxied calls, written after the fact from the finished `Call`.

One ``SERVER`` span per call (``POST /v1/chat/completions``), its trace id the call's
``trace_id`` (the ``X-AG-Trace-Id`` response header) and its span id `server_span_id`
of it, so the request event's ``traceparent`` (which names the same span) makes the
telemetry service's consumer span its child: one trace across services. A call that
reached an upstream also gets a ``CLIENT`` child span for the upstream exchange.

The ``traceparent``'s sampled flag is the tracer's decision for the call's span
(`CallTracer.sampled`, asked by the event publisher off the request path; a trace-id
ratio decides by the trace id alone, so both agree). With tracing off the flag says
sampled: no proxy span exists, and a downstream service that traces may still do so.
"""

from __future__ import annotations

import hashlib

from trustgate_core.observability.tracing import ChildSpan, Tracing, format_traceparent
from trustgate_proxy.domain.call import Call


def server_span_id(trace_id: str) -> str:
    """The proxy span's id for a call: derived from its trace id, so the publisher of its
    request event and the tracer agree without sharing state."""
    digest = hashlib.blake2b(trace_id.encode(), digest_size=8).hexdigest()
    return digest if digest != "0000000000000000" else "0000000000000001"


def call_traceparent(call: Call, sampled: bool = True) -> str:
    """The ``traceparent`` a call's request event carries: the proxy span as parent."""
    return format_traceparent(call.trace_id, server_span_id(call.trace_id), sampled)


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _span_name(call: Call) -> str:
    return f"{call.method} {call.path}"


class CallTracer:
    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def sampled(self, call: Call) -> bool:
        """Whether `record` will export this call's span (the same sampler decision)."""
        return self.tracing.is_sampled(call.trace_id, _span_name(call))

    def record(self, call: Call) -> None:
        start = _ns(call.started_wall)  # the wall clock at ``call.started``
        started = call.started

        def at(perf: float) -> int:
            return start + _ns(max(0.0, perf - started))

        attributes: dict[str, str | int | bool] = {
            "http.request.method": call.method,
            "http.route": call.path,
            "http.response.status_code": call.status,
            "trustgate.stream": call.stream,
        }
        if call.gateway_id is not None:
            attributes["trustgate.gateway_id"] = str(call.gateway_id)
        if call.tenant_id:
            attributes["trustgate.tenant_id"] = call.tenant_id
        if call.consumer_id is not None:
            attributes["trustgate.consumer_id"] = str(call.consumer_id)
        if call.registry_id is not None:
            attributes["trustgate.registry_id"] = str(call.registry_id)
        if call.provider:
            attributes["gen_ai.provider.name"] = call.provider
        if call.requested_model:
            attributes["trustgate.requested_model"] = call.requested_model
        if call.model:
            attributes["gen_ai.request.model"] = call.model
        if call.error_kind:
            attributes["error.type"] = call.error_kind
        usage = call.usage
        if usage:
            attributes["gen_ai.usage.input_tokens"] = int(usage.get("prompt_tokens") or 0)
            attributes["gen_ai.usage.output_tokens"] = int(usage.get("completion_tokens") or 0)
        children: list[ChildSpan] = []
        if call.upstream_start:
            up_attrs: dict[str, str | int] = {"http.response.status_code": call.status}
            if call.provider:
                up_attrs["gen_ai.provider.name"] = call.provider
            if call.model:
                up_attrs["gen_ai.request.model"] = call.model
            children.append(
                ChildSpan(
                    f"chat {call.model}" if call.model else "chat",
                    at(call.upstream_start),
                    at(call.upstream_end or call.ended),
                    "client",
                    up_attrs,
                    call.error_kind if call.error_kind and call.status >= 500 else None,
                )
            )
        self.tracing.record_span(
            _span_name(call),
            trace_id=call.trace_id,
            span_id=server_span_id(call.trace_id),
            start_ns=start,
            end_ns=at(call.ended),
            kind="server",
            attributes=attributes,
            error=(call.error_kind or "error") if call.status >= 500 else None,
            children=children,
        )
