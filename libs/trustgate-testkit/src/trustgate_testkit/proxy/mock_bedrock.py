"""A mock of AWS Bedrock Runtime's Converse and ConverseStream APIs, for tests.

``POST /model/{modelId}/converse`` answers JSON; ``POST /model/{modelId}/converse-stream``
answers ``application/vnd.amazon.eventstream`` frames. Every request's SigV4 signature is
verified as AWS does: recomputed (botocore's canonical request, string to sign and
signature) from the method, path, query, the headers named in ``SignedHeaders`` and the
body as received, with the known test credentials; a mismatch is a 403
``InvalidSignatureException``, an unknown key id a 403 ``UnrecognizedClientException``.

Fixtures' provenance:
- Amazon Bedrock API Reference, ``Converse`` and ``ConverseStream`` (request/response
  syntax: ``messages``, ``system``, ``inferenceConfig``, ``toolConfig``; ``output.message``,
  ``stopReason``, ``usage`` ``TokenUsage``, ``metrics``), the ``ContentBlock``,
  ``ContentBlockDelta``, ``ContentBlockStart``, ``ReasoningContentBlock`` types, and the
  ConverseStream output events (``messageStart``, ``contentBlockStart``,
  ``contentBlockDelta``, ``contentBlockStop``, ``messageStop``, ``metadata``; exceptions
  ``throttlingException``, ``validationException``, ``modelStreamErrorException``, …);
  the ``p`` padding field real streams carry in each event;
- the AWS event-stream encoding (the "Event stream encoding" page of the Amazon S3 /
  Transcribe docs, and botocore's ``eventstream`` decoder): a frame is a 12-byte prelude
  (total length, headers length, CRC32 of those 8 bytes), headers (name length u8, name,
  value type u8 — 7 is a string with a u16 length), the payload, and the CRC32 of
  everything before it; headers ``:message-type`` (event|exception),
  ``:event-type`` / ``:exception-type``, ``:content-type``;
- AWS error responses: status, ``x-amzn-ErrorType`` header and a ``{"message"}`` body
  (SigV4 errors as documented in "Signature Version 4 signing errors").

By model name (the id in the path): ``…-tools`` (a ``get_weather`` tool call, or the
answer to its result), ``…-long`` (``max_tokens``), ``…-thinking`` (a reasoning block
first), ``…-cut`` (stream aborted after the first delta), ``…-badcrc`` (a frame with a
corrupt CRC after the first delta), ``…-slow`` (a stream held after the first delta
until ``release`` is set), ``…-ratelimited`` (429 ``ThrottlingException``);
anything else answers ``Hello from <name>``. Usage: 8 input + 3 cache-read, 7 output.
"""

from __future__ import annotations

import asyncio
import hmac
import struct
from binascii import crc32
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote
from uuid import uuid4

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from trustgate_testkit.proxy.mock_base import (
    Modes,
    abort,
    answer_text,
    read_json,
    serve_app,
    words,
)
from trustgate_testkit.proxy.providers import ProviderMock, Recorded

ACCESS_KEY_ID = "AKIAMOCKBEDROCK00001"
SECRET_ACCESS_KEY = "mockBedrockSecret/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "mock-session-token-FwoGZXIvYXdzEXAMPLE"
REGION = "us-east-1"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"
_MAX_SKEW_SECONDS = 15 * 60


# -- event-stream frames ------------------------------------------------------------------


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (with its CRC), string headers, payload, CRC."""
    raw = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        raw += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(raw) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw))
    message = prelude + struct.pack(">I", crc32(prelude)) + raw + payload
    return message + struct.pack(">I", crc32(message))


def event_frame(event_type: str, doc: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_frame(headers, orjson.dumps({**doc, "p": _PAD[: 5 + len(event_type)]}))


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, orjson.dumps({"message": message}))


def corrupt(frame: bytes) -> bytes:
    """``frame`` with its message CRC flipped."""
    return frame[:-4] + bytes(b ^ 0xFF for b in frame[-4:])


# -- SigV4 --------------------------------------------------------------------------------


def _error(status: int, kind: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": kind, **headers}
    )


def verify_sigv4(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    secrets: dict[str, str],
    session_token: str | None,
    now: datetime | None = None,
) -> tuple[int, str, str] | None:
    """``None`` when the request's SigV4 signature is valid, else (status, error type,
    message) as AWS answers. ``headers`` are the received ones (any case); ``url`` the
    full URL with the path and query exactly as received."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
    fields: dict[str, str] = {}
    for item in auth[len("AWS4-HMAC-SHA256 ") :].split(","):
        key, _, value = item.strip().partition("=")
        fields[key] = value
    scope = fields.get("Credential", "").split("/")
    signed = fields.get("SignedHeaders", "").split(";")
    given = fields.get("Signature", "")
    if len(scope) != 5 or not given or "host" not in signed:
        return 403, "IncompleteSignatureException", "Authorization header is malformed."
    key_id, day, region, service, terminal = scope
    secret = secrets.get(key_id)
    token = lower.get("x-amz-security-token")
    if secret is None or token != session_token:
        return (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if session_token is not None and "x-amz-security-token" not in signed:
        return 403, "InvalidSignatureException", SIGNATURE_MISMATCH
    stamp = lower.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 403, "IncompleteSignatureException", "Missing or malformed X-Amz-Date."
    skew = abs(((now or datetime.now(UTC)) - when).total_seconds())
    if skew > _MAX_SKEW_SECONDS:
        return 403, "InvalidSignatureException", f"Signature expired: {stamp} is out of range."
    if day != stamp[:8] or service != "bedrock" or terminal != "aws4_request":
        return 403, "InvalidSignatureException", SIGNATURE_MISMATCH
    missing = [h for h in signed if h not in lower]
    if missing:
        return 403, "InvalidSignatureException", SIGNATURE_MISMATCH
    request = AWSRequest(method=method, url=url, data=body, headers={h: lower[h] for h in signed})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key_id, secret, token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if signer.signed_headers(signer.headers_to_sign(request)) != ";".join(signed):
        return 403, "InvalidSignatureException", SIGNATURE_MISMATCH
    if not hmac.compare_digest(expected, given):
        return 403, "InvalidSignatureException", SIGNATURE_MISMATCH
    return None


# -- the mock -----------------------------------------------------------------------------


def _model(seen: Recorded) -> str:
    """The model id from a recorded ``/model/{modelId}/converse[-stream]`` path."""
    return unquote(seen.path.split("?", 1)[0].split("/", 2)[2].rsplit("/", 1)[0])


def _system_of(body: dict[str, Any]) -> str | None:
    texts = [b.get("text", "") for b in body.get("system") or [] if isinstance(b, dict)]
    return "\n".join(texts) if texts else None


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        for block in message.get("content") or []:
            out.append(block)
            if "toolResult" in block:
                out.extend(block["toolResult"].get("content") or [])
    return out


def _tool_result_of(body: dict[str, Any]) -> str | None:
    for block in _blocks(body):
        if "toolResult" in block:
            texts = [c["text"] for c in block["toolResult"].get("content") or [] if "text" in c]
            return "".join(texts)
    return None


def _validation(body: Any) -> str | None:
    """What real Converse would reject in ``body`` (a ValidationException message)."""
    if not isinstance(body, dict):
        return "Malformed input request, please reformat your input and try again."
    allowed = {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "promptVariables",
        "requestMetadata",
        "performanceConfig",
    }
    extra = sorted(set(body) - allowed)
    if extra:
        return f"Malformed input request: extraneous key [{extra[0]}] is not permitted"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message."
    if messages[0].get("role") != "user":
        return "A conversation must start with a user message."
    role = "assistant"
    for message in messages:
        if message.get("role") == role or message.get("role") not in ("user", "assistant"):
            return "A conversation must alternate between user and assistant roles."
        role = message["role"]
        if not message.get("content"):
            return "The content field in the Message object is empty."
    blocks = _blocks(body)
    if any("toolUse" in b or "toolResult" in b for b in blocks) and not body.get("toolConfig"):
        return (
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    for block in blocks:
        if "text" in block and not isinstance(block["text"], str):
            return "The text field in the ContentBlock object is malformed."
        image = block.get("image")
        if image is not None and (
            image.get("format") not in ("png", "jpeg", "gif", "webp")
            or not isinstance((image.get("source") or {}).get("bytes"), str)
        ):
            return "The image block is malformed."
    return None


@dataclass
class BedrockMock:
    name: str = "bedrock"
    url: str = ""
    region: str = REGION
    secrets: dict[str, str] = field(default_factory=lambda: {ACCESS_KEY_ID: SECRET_ACCESS_KEY})
    session_token: str | None = None
    requests: list[Recorded] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # lets ``-slow`` go on
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # a stream was completed

    def auth(self) -> dict[str, Any]:
        """The registry's ``auth`` (in clear) that this mock accepts."""
        aws: dict[str, Any] = {
            "region": self.region,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": self.secrets[ACCESS_KEY_ID],
        }
        if self.session_token:
            aws["session_token"] = self.session_token
        return {"type": "aws", "aws": aws}

    async def _accept(
        self, request: web.Request
    ) -> tuple[Recorded, None] | tuple[None, web.Response]:
        raw, body = await read_json(request)
        url = f"{request.scheme}://{request.host}{request.raw_path}"
        refused = verify_sigv4(
            request.method,
            url,
            dict(request.headers),
            raw,
            secrets=self.secrets,
            session_token=self.session_token,
        )
        if refused is not None:
            status, kind, message = refused
            return None, _error(status, kind, message)
        problem = _validation(body)
        if problem is not None:
            return None, _error(400, "ValidationException", problem)
        blocks = _blocks(body)
        seen = Recorded(
            path=request.raw_path,
            headers=dict(request.headers),
            body=body,
            system=_system_of(body),
            has_image=any("image" in b for b in blocks),
            tool_result=_tool_result_of(body),
        )
        self.requests.append(seen)
        if Modes.of(_model(seen)).ratelimited:
            return None, _error(
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
                **{"Retry-After": "7"},
            )
        return seen, None

    def _answer(self, seen: Recorded) -> tuple[list[dict[str, Any]], str]:
        """The answer's content blocks and stop reason."""
        modes = Modes.of(_model(seen))
        if modes.tools:
            if seen.tool_result is None:
                use = {"toolUseId": "tooluse_mock0001", "name": "get_weather"}
                return [{"toolUse": {**use, "input": {"city": "Paris"}}}], "tool_use"
            return [{"text": answer_text(self.name, seen.tool_result)}], "end_turn"
        blocks: list[dict[str, Any]] = []
        if modes.thinking:
            blocks.append(
                {
                    "reasoningContent": {
                        "reasoningText": {"text": "Let me think.", "signature": "sig-mock-1"}
                    }
                }
            )
        blocks.append({"text": answer_text(self.name, None)})
        return blocks, "max_tokens" if modes.long else "end_turn"

    @staticmethod
    def _usage() -> dict[str, int]:
        return {
            "inputTokens": 8,
            "outputTokens": 7,
            "totalTokens": 18,
            "cacheReadInputTokens": 3,
            "cacheWriteInputTokens": 0,
        }

    async def converse(self, request: web.Request) -> web.Response:
        seen, refused = await self._accept(request)
        if seen is None:
            assert refused is not None
            return refused
        blocks, stop = self._answer(seen)
        return web.json_response(
            {
                "output": {"message": {"role": "assistant", "content": blocks}},
                "stopReason": stop,
                "usage": self._usage(),
                "metrics": {"latencyMs": 42},
            },
            headers={"x-amzn-RequestId": str(uuid4())},
        )

    async def converse_stream(self, request: web.Request) -> web.StreamResponse:
        seen, refused = await self._accept(request)
        if seen is None:
            assert refused is not None
            return refused
        blocks, stop = self._answer(seen)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "x-amzn-RequestId": str(uuid4()),
            }
        )
        await resp.prepare(request)
        await resp.write(event_frame("messageStart", {"role": "assistant"}))
        model = _model(seen)
        modes = Modes.of(model)
        for index, block in enumerate(blocks):
            for n, frame in enumerate(_block_frames(index, block)):
                await resp.write(frame)
                if index == len(blocks) - 1 and n == 0 and "text" in block:
                    if modes.slow:
                        await self.release.wait()
                    if modes.cut:
                        abort(request)  # no messageStop, no metadata
                        return resp
                    if model.endswith("-badcrc"):
                        bad = event_frame(
                            "contentBlockDelta",
                            {"contentBlockIndex": index, "delta": {"text": " garbled"}},
                        )
                        await resp.write(corrupt(bad))
        await resp.write(event_frame("messageStop", {"stopReason": stop}))
        await resp.write(
            event_frame("metadata", {"usage": self._usage(), "metrics": {"latencyMs": 42}})
        )
        await resp.write_eof()
        self.finished.set()
        return resp


def _block_frames(index: int, block: dict[str, Any]) -> list[bytes]:
    """A content block as ConverseStream sends it: start (tool use only), deltas, stop."""
    frames: list[bytes] = []

    def delta(value: dict[str, Any]) -> None:
        frames.append(
            event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": value})
        )

    if "text" in block:
        for word in words(block["text"]):
            delta({"text": word})
    elif "toolUse" in block:
        use = block["toolUse"]
        start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
        frames.append(
            event_frame("contentBlockStart", {"contentBlockIndex": index, "start": start})
        )
        text = orjson.dumps(use["input"]).decode()
        half = len(text) // 2
        delta({"toolUse": {"input": text[:half]}})
        delta({"toolUse": {"input": text[half:]}})
    elif "reasoningContent" in block:
        reasoning = block["reasoningContent"]["reasoningText"]
        delta({"reasoningContent": {"text": reasoning["text"]}})
        delta({"reasoningContent": {"signature": reasoning["signature"]}})
    frames.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
    return frames


@asynccontextmanager
async def serve_bedrock(
    name: str = "bedrock", session_token: str | None = None
) -> AsyncIterator[BedrockMock]:
    """The mock on a free port; ``mock.url`` is the base URL (``provider_options.base_url``)."""
    mock = BedrockMock(name=name, session_token=session_token)
    app = web.Application()
    app.router.add_post("/model/{model_id:.+}/converse", mock.converse)
    app.router.add_post("/model/{model_id:.+}/converse-stream", mock.converse_stream)
    async with serve_app(app) as url:
        mock.url = url
        yield mock


@asynccontextmanager
async def serve_bedrock_mock(name: str = "bedrock") -> AsyncIterator[ProviderMock]:
    """The mock as a ``bedrock`` registry (``auth.aws`` with the known test keys)."""
    async with serve_bedrock(name) as mock:
        yield ProviderMock(
            provider="bedrock",
            wire="bedrock",
            options={"base_url": mock.url},
            auth=mock.auth(),
            requests=mock.requests,
            name=name,
        )
