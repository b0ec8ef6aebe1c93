"""Mocks of Google's Gemini API and Vertex AI (Gemini's wire format on both) and Google's
OAuth token endpoint for service accounts; for tests. (Entra ID's token endpoint for Azure
service principals is ``mock_entra``.)

Paths: ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` (Gemini API; the key in ``x-goog-api-key`` or
``?key=``), ``GET /v1beta/models``, ``POST /v1/projects/{project}/locations/{location}/
publishers/google/models/{model}:{action}`` (Vertex; ``Authorization: Bearer`` with a token
this mock minted, or the static ``VERTEX_STATIC_TOKEN``), ``POST /token`` (the service
account's ``token_uri``: a JWT-bearer grant whose RS256 assertion is verified against the
service account's public key, its ``iss``, ``aud``, ``scope`` and ``exp`` checked).

Fixtures' provenance:
- Gemini API reference (ai.google.dev/api): ``models.generateContent`` /
  ``models.streamGenerateContent`` request (``contents[].role/parts``, ``Part`` with
  ``text`` / ``inlineData`` / ``fileData`` / ``functionCall`` / ``functionResponse`` /
  ``thought`` / ``thoughtSignature``, ``systemInstruction``, ``tools[].functionDeclarations``,
  ``toolConfig.functionCallingConfig``, ``generationConfig`` incl. ``thinkingConfig``) and
  ``GenerateContentResponse`` (``candidates[].content``, ``finishReason``, ``index``,
  ``usageMetadata`` with ``promptTokenCount``, ``candidatesTokenCount``,
  ``cachedContentTokenCount``, ``thoughtsTokenCount``, ``totalTokenCount``,
  ``promptTokensDetails``; ``modelVersion``, ``responseId``); ``alt=sse`` streams are
  ``data: <GenerateContentResponse>`` events separated by CRLF CRLF, with no end marker,
  the last one carrying ``finishReason``; ``models.list`` (``models[].name`` =
  ``models/<id>``);
- Vertex AI REST reference (``projects.locations.publishers.models.generateContent`` /
  ``streamGenerateContent``): the same bodies under ``/v1/projects/…`` paths;
- Google's error model (cloud.google.com/apis/design/errors): ``{"error": {"code",
  "message", "status"}}``; an invalid key is 400 ``INVALID_ARGUMENT`` with an
  ``ErrorInfo`` reason ``API_KEY_INVALID``, a missing one 403 ``PERMISSION_DENIED``, a
  bad bearer 401 ``UNAUTHENTICATED``, quota 429 ``RESOURCE_EXHAUSTED``; an unknown field
  400 ``Invalid JSON payload received. Unknown name "…"``;
- Google OAuth 2.0 for server-to-server applications (developers.google.com/identity/
  protocols/oauth2/service-account): the JWT claims and the ``urn:ietf:params:oauth:
  grant-type:jwt-bearer`` grant, answered ``{access_token, expires_in, token_type}``, a
  bad assertion 400 ``{"error": "invalid_grant", "error_description": …}``.

By model name: ``…-tools`` (a ``get_weather`` function call, or with a function response
in the request the text ``The weather is <result>``; Gemini sends a call whole, so its
arguments cannot come in several deltas), ``…-long`` (``MAX_TOKENS``), ``…-thinking`` (a
``thought: true`` part first), ``…-cut`` (stream aborted after the first delta),
``…-ratelimited`` (429 ``RESOURCE_EXHAUSTED``, ``Retry-After: 7``); anything else
``Hello from <name>``. Usage: prompt 11 (3 of them cached), output 7.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from trustgate_testkit.proxy.mock_base import Modes, abort, bearer, serve_app, sse, words
from trustgate_testkit.proxy.providers import ProviderMock, Recorded

GEMINI_KEY = "AIzaSyMockGeminiKey-0123456789abcdef"
VERTEX_STATIC_TOKEN = "ya29.mock-static-vertex-token"
PROJECT = "mock-project"
LOCATION = "us-central1"
SA_EMAIL = "proxy@mock-project.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # whatever the token_uri

# Google's request fields (an unknown one is refused as Google does).
_REQUEST_KEYS = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
        "safetySettings",
        "cachedContent",
        "labels",
    }
)
_GENERATION_KEYS = frozenset(
    {
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "stopSequences",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "thinkingConfig",
        "candidateCount",
        "responseLogprobs",
        "logprobs",
        "responseModalities",
    }
)
_PART_KEYS = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "thought",
        "thoughtSignature",
        "executableCode",
        "codeExecutionResult",
    }
)


def google_error(code: int, status: str, message: str, **extra: Any) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message, "status": status, **extra}
    return web.json_response({"error": error}, status=code)


def _unknown_field(doc: dict[str, Any]) -> str | None:
    for key in doc:
        if key not in _REQUEST_KEYS:
            return key
    gen = doc.get("generationConfig")
    if isinstance(gen, dict):
        for key in gen:
            if key not in _GENERATION_KEYS:
                return f"generation_config.{key}"
    for content in doc.get("contents") or []:
        for part in content.get("parts") or []:
            for key in part:
                if key not in _PART_KEYS:
                    return f"contents.parts.{key}"
    return None


def record(path: str, headers: dict[str, str], body: dict[str, Any]) -> Recorded:
    """What the contract's ``Recorded`` asks of a Gemini request."""
    system_parts = (body.get("systemInstruction") or {}).get("parts") or []
    system = "".join(p.get("text", "") for p in system_parts if isinstance(p, dict))
    has_image = False
    result: str | None = None
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            if "inlineData" in part or "fileData" in part:
                has_image = True
            response = (part.get("functionResponse") or {}).get("response")
            if isinstance(response, dict):
                value = response.get("content", response.get("error", response))
                result = value if isinstance(value, str) else orjson.dumps(value).decode()
    return Recorded(
        path=path,
        headers=headers,
        body=body,
        system=system or None,
        has_image=has_image,
        tool_result=result,
    )


def _usage(model: str, output: int = 7) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": 11,
        "candidatesTokenCount": output,
        "totalTokenCount": 11 + output,
        "cachedContentTokenCount": 3,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}],
    }
    if Modes.of(model).thinking:
        usage["candidatesTokenCount"] = output - 3
        usage["thoughtsTokenCount"] = 3
    return usage


def _response(
    model: str, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any] | None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    doc: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        doc["usageMetadata"] = usage
    doc["modelVersion"] = model
    doc["responseId"] = "mockResp01"
    return doc


def _sse(doc: dict[str, Any]) -> bytes:
    return sse(doc, crlf=True)


@dataclass
class GeminiMock:
    """One server for the Gemini API, Vertex AI and Google's token endpoint."""

    name: str = "gemini"
    url: str = ""
    recorded: list[Recorded] = field(default_factory=list)
    vertex_recorded: list[Recorded] = field(default_factory=list)
    sa_info: dict[str, Any] = field(default_factory=dict)
    public_key: Any = None
    google_tokens: set[str] = field(default_factory=set)
    google_mints: int = 0
    _seq: Any = field(default_factory=itertools.count)

    # -- generation ------------------------------------------------------------------------

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key is None:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to "
                "call this API.",
            )
        if key != GEMINI_KEY:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )
        return await self._generate(request, self.recorded)

    async def vertex(self, request: web.Request) -> web.StreamResponse:
        token = bearer(request)
        if token is None or (token not in self.google_tokens and token != VERTEX_STATIC_TOKEN):
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
            )
        if request.match_info["project"] != PROJECT or request.match_info["location"] != LOCATION:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Permission denied on resource project (or it may not exist).",
            )
        return await self._generate(request, self.vertex_recorded)

    async def _generate(self, request: web.Request, log: list[Recorded]) -> web.StreamResponse:
        model, _, action = request.match_info["target"].partition(":")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        log.append(record(request.path_qs, dict(request.headers), body))
        unknown = _unknown_field(body) if isinstance(body, dict) else "(root)"
        if unknown is not None:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{unknown}": Cannot find field.',
            )
        if not body.get("contents"):
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "* GenerateContentRequest.contents: contents is not specified",
            )
        if action not in ("generateContent", "streamGenerateContent"):
            return google_error(404, "NOT_FOUND", f"Method {action} not found.")
        modes = Modes.of(model)
        if modes.ratelimited:
            limited = google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            )
            limited.headers["Retry-After"] = "7"
            return limited
        stream = action == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            return google_error(400, "INVALID_ARGUMENT", "this mock streams only with alt=sse")
        pieces, finish = self._answer(model, body)
        if not stream:
            parts: list[dict[str, Any]] = []
            for piece in pieces:
                if "text" in piece and parts and "text" in parts[-1] and not piece.get("thought"):
                    if not parts[-1].get("thought"):
                        parts[-1] = {"text": parts[-1]["text"] + piece["text"]}
                        continue
                parts.append(piece)
            return web.json_response(_response(model, parts, finish, _usage(model)))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            done = i == last
            partial = {"promptTokenCount": 11, "totalTokenCount": 11}
            usage = _usage(model) if done else partial
            await resp.write(_sse(_response(model, [piece], finish if done else None, usage)))
            if i == 0 and modes.cut:
                abort(request)  # no finishReason
                return resp
        await resp.write_eof()
        return resp

    def _answer(self, model: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        result = record("", {}, body).tool_result
        modes = Modes.of(model)
        if modes.tools and result is None:
            call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
            return [call], "STOP"
        if modes.tools:
            return [{"text": "The weather is "}, {"text": result or ""}], "STOP"
        pieces: list[dict[str, Any]] = [{"text": w} for w in words(f"Hello from {self.name}")]
        if modes.thinking:
            pieces.insert(0, {"text": "Thinking about a greeting.", "thought": True})
        if modes.long:
            return pieces[:-1], "MAX_TOKENS"
        return pieces, "STOP"

    async def models(self, request: web.Request) -> web.Response:
        if (
            request.headers.get("x-goog-api-key") != GEMINI_KEY
            and request.query.get("key") != GEMINI_KEY
        ):
            return google_error(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."
            )
        return web.json_response(
            {
                "models": [
                    {
                        "name": "models/gemini-2.5-flash",
                        "version": "001",
                        "displayName": "Gemini 2.5 Flash",
                        "supportedGenerationMethods": ["generateContent", "countTokens"],
                    }
                ]
            }
        )

    # -- token endpoint --------------------------------------------------------------------

    async def google_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER or not isinstance(form.get("assertion"), str):
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."},
                status=400,
            )
        problem = self._verify_assertion(str(form["assertion"]))
        if problem is not None:
            return web.json_response(
                {"error": "invalid_grant", "error_description": problem}, status=400
            )
        self.google_mints += 1
        token = f"ya29.mock-{self.google_mints}-{next(self._seq)}"
        self.google_tokens.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    def _verify_assertion(self, assertion: str) -> str | None:
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = orjson.loads(_b64(head_b64))
            claims = orjson.loads(_b64(claims_b64))
            signature = _b64(sig_b64)
        except (ValueError, orjson.JSONDecodeError):
            return "Invalid JWT: malformed assertion."
        if header.get("alg") != "RS256":
            return "Invalid JWT: the signing algorithm must be RS256."
        try:
            self.public_key.verify(
                signature,
                f"{head_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return "Invalid JWT Signature."
        if claims.get("iss") != SA_EMAIL:
            return "Invalid JWT: unknown issuer."
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            return "Invalid JWT: Failed audience check."
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return "Invalid JWT: the scope is missing cloud-platform."
        now = time.time()
        if not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0)):
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        return None


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def service_account(token_uri: str) -> tuple[dict[str, Any], Any]:
    """A fresh service-account JSON (a new RSA key) and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "mock-key-1",
        "private_key": pem,
        "client_email": SA_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    return info, key.public_key()


@asynccontextmanager
async def serve_google_mock(name: str = "gemini") -> AsyncIterator[GeminiMock]:
    mock = GeminiMock(name)
    app = web.Application()
    app.router.add_post("/v1beta/models/{target}", mock.gemini)
    app.router.add_get("/v1beta/models", mock.models)
    app.router.add_post(
        "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}",
        mock.vertex,
    )
    app.router.add_post("/token", mock.google_token)
    async with serve_app(app) as url:
        mock.url = url
        mock.sa_info, mock.public_key = service_account(f"{mock.url}/token")
        yield mock


@asynccontextmanager
async def serve_gemini_mock(name: str = "gemini") -> AsyncIterator[ProviderMock]:
    """The mock as a ``gemini`` registry (Gemini API, ``x-goog-api-key``)."""
    async with serve_google_mock(name) as mock:
        yield ProviderMock(
            provider="gemini",
            wire="gemini",
            options={"base_url": mock.url},
            auth={"type": "api_key", "api_key": {"api_key": GEMINI_KEY}},
            requests=mock.recorded,
            name=name,
        )


@asynccontextmanager
async def serve_vertex_mock(name: str = "vertex") -> AsyncIterator[ProviderMock]:
    """The mock as a ``vertex`` registry with a service account (project from its
    ``project_id``, tokens minted at the mock's ``/token``)."""
    async with serve_google_mock(name) as mock:
        yield ProviderMock(
            provider="vertex",
            wire="gemini",
            options={"base_url": mock.url, "location": LOCATION},
            auth={"type": "gcp_service_account", "gcp_service_account": mock.sa_info},
            requests=mock.vertex_recorded,
            name=name,
        )
