"""Runner: ``cors``, cross-origin access for browser apps.

The pipeline asks it before any key check: ``allow`` gives the CORS headers of every
answer to an allowed origin (errors included, so the app can read a 401), ``preflight``
answers a browser's ``OPTIONS`` (which carries no key). Its ``pre_request`` refuses a
browser request (one with an ``Origin``) from an origin that is not allowed: 403 in
``enforce``, a record in ``observe``. ``observe`` never widens access: a disallowed origin
gets no CORS headers in either mode (its browser keeps refusing to read the answer).

Everything an answer carries is computed here once; a call costs a dictionary lookup
and, for a specific origin, one list.
"""

from __future__ import annotations

import re
from typing import Final

import orjson

from trustgate_core.errors import PolicyRejected
from trustgate_core.plugins.cors import CorsSettings
from trustgate_core.policy.engine import Decision, PolicyDeps, PolicyInfo, Runner
from trustgate_core.policy.exchange import Answer, Header, PolicyExchange

#: Preflight lifetime when the policy sets none (browsers cap it: Chrome at 2 h).
DEFAULT_MAX_AGE: Final = 600

#: Request headers always allowed: the gateway's key and routing headers, and what the
#: official OpenAI and Anthropic JS SDKs send from a browser (``dangerouslyAllowBrowser``).
BASE_REQUEST_HEADERS: Final = frozenset(
    {
        "accept",
        "authorization",
        "content-type",
        "x-api-key",
        "x-ag-api-key",
        "x-ag-gateway-slug",
        "x-session-id",
        "idempotency-key",
        "user-agent",
        "openai-organization",
        "openai-project",
        "openai-beta",
        "anthropic-version",
        "anthropic-beta",
        "anthropic-dangerous-direct-browser-access",
    }
)
#: The SDKs' own telemetry headers (``x-stainless-lang``, ``-retry-count``, ...).
BASE_REQUEST_PREFIXES: Final = ("x-stainless-",)

#: The gateway's response headers a browser app may read (beyond the CORS-safelisted
#: ones): the trace id, routing, and what limits, budgets, sizes and the cache report.
GATEWAY_RESPONSE_HEADERS: Final = (
    "X-AG-Trace-Id",
    "X-Session-Id",
    "X-Selected-Provider",
    "X-Selected-Model",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reason",
    "X-RateLimit-Global-Limit",
    "X-RateLimit-Global-Remaining",
    "X-RateLimit-Global-Reset",
    "X-RateLimit-Consumer-Limit",
    "X-RateLimit-Consumer-Remaining",
    "X-RateLimit-Consumer-Reset",
    "X-Ratelimit-Limit-Tokens",
    "X-Ratelimit-Remaining-Tokens",
    "X-Ratelimit-Reset-Tokens",
    "X-Budget-Unit",
    "X-Budget-Scope",
    "X-Budget-Window",
    "X-Budget-Limit-Usd",
    "X-Budget-Remaining-Usd",
    "X-Budget-Reset",
    "X-NeuralTrust-Model-Downgraded",
    "X-Request-Size-Bytes",
    "X-Request-Size-Chars",
    "X-Size-Limit-Bytes",
    "X-Size-Limit-Chars",
    "X-Cache",
    "X-Cache-Status",
    "X-Cache-Similarity",
)

_VARY: Final[Header] = (b"vary", b"Origin")
_PREFLIGHT_VARY: Final[Header] = (
    b"vary",
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
)


def _refusal(code: str, message: str) -> bytes:
    return orjson.dumps({"error": code, "message": message})


class CorsRunner(Runner):
    def __init__(self, info: PolicyInfo, settings: CorsSettings, deps: PolicyDeps) -> None:
        super().__init__(info, settings, deps)
        origins = [origin.lower() for origin in settings.allowed_origins]
        self.any_origin = "*" in origins
        self._exact = frozenset(o for o in origins if "*" not in o)
        globs = [o for o in origins if "*" in o and o != "*"]
        self._glob = (
            re.compile("|".join("[^/]*".join(map(re.escape, g.split("*"))) for g in globs))
            if globs
            else None
        )
        self._methods = frozenset(settings.allowed_methods)
        allowed = {h.lower() for h in settings.allowed_headers}
        self._any_header = "*" in allowed
        self._headers = BASE_REQUEST_HEADERS | allowed
        credentials = settings.allow_credentials
        expose: dict[str, str] = {h.lower(): h for h in GATEWAY_RESPONSE_HEADERS}
        for header in settings.expose_headers:
            expose.setdefault(header.lower(), header)
        shared: list[Header] = [
            (b"access-control-expose-headers", ", ".join(expose.values()).encode())
        ]
        if credentials:
            shared.append((b"access-control-allow-credentials", b"true"))
        self._shared = shared
        # ``*`` only without credentials (the settings refuse the pair)
        self._wildcard: list[Header] | None = (
            [(b"access-control-allow-origin", b"*"), *shared] if self.any_origin else None
        )
        max_age = DEFAULT_MAX_AGE if settings.max_age is None else settings.max_age
        self._preflight_shared: list[Header] = [
            (b"access-control-allow-methods", ", ".join(settings.allowed_methods).encode()),
            (b"access-control-max-age", str(max_age).encode()),
            _PREFLIGHT_VARY,
        ]
        if credentials:
            self._preflight_shared.append((b"access-control-allow-credentials", b"true"))

    def allowed(self, origin: str) -> bool:
        if self.any_origin:
            return True
        origin = origin.lower()
        return origin in self._exact or (
            self._glob is not None and self._glob.fullmatch(origin) is not None
        )

    def allow(self, origin: str) -> list[Header]:
        """The CORS headers of an answer to ``origin``: none when it is not allowed."""
        if self._wildcard is not None:
            return self._wildcard
        if not self.allowed(origin):
            return []
        return [(b"access-control-allow-origin", origin.encode("latin-1")), _VARY, *self._shared]

    def preflight(self, origin: str, method: str | None, headers: str | None) -> Answer:
        """204 with what the browser asked for, or 403 without any CORS header."""
        if not self.allowed(origin):
            return Answer(
                403, _refusal("cors_origin_not_allowed", f"origin {origin} is not allowed")
            )
        if method is not None and method.strip().upper() not in self._methods:
            return Answer(
                403, _refusal("cors_method_not_allowed", f"method {method} is not allowed")
            )
        requested = [h.strip().lower() for h in headers.split(",")] if headers else []
        requested = [h for h in requested if h]
        refused = [h for h in requested if not self._header_allowed(h)]
        if refused:
            return Answer(
                403,
                _refusal(
                    "cors_header_not_allowed",
                    f"request header(s) not allowed: {', '.join(refused)}",
                ),
            )
        out: list[Header] = [
            (
                b"access-control-allow-origin",
                b"*" if self._wildcard is not None else origin.encode("latin-1"),
            ),
            *self._preflight_shared,
        ]
        if requested:
            out.append((b"access-control-allow-headers", ", ".join(requested).encode("latin-1")))
        return Answer(204, b"", out)

    def _header_allowed(self, name: str) -> bool:
        return self._any_header or name in self._headers or name.startswith(BASE_REQUEST_PREFIXES)

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        origin = x.header(b"origin")
        if origin is None or self.allowed(origin):
            return None
        raise PolicyRejected(
            403,
            {"error": "cors_origin_not_allowed", "message": f"origin {origin} is not allowed"},
            kind="cors_origin_not_allowed",
        )
