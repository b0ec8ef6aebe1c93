"""One error hierarchy: each error knows its code, HTTP status and whether it is retryable."""

from __future__ import annotations

from typing import Any, ClassVar


class TrustGateError(Exception):
    """``code`` and ``status`` are the class's; an error with its own (a policy's refusal)
    sets them on the instance. ``headers`` go on the error response."""

    code: str = "internal_error"
    status: int = 500
    retryable: ClassVar[bool] = False
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message or self.code)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code}
        if self.message is not None:
            out["message"] = self.message
        out.update(self.extra)
        return out


class InvalidUUID(TrustGateError):
    code, status = "invalid_uuid", 400


class InvalidQuery(TrustGateError):
    code, status = "invalid_query", 400


class InvalidPagination(TrustGateError):
    code, status = "invalid_pagination", 422


class InvalidSort(TrustGateError):
    code, status = "invalid_sort", 422


class InvalidFilter(TrustGateError):
    code, status = "invalid_filter", 422


class ValidationFailed(TrustGateError):
    code, status = "validation_failed", 422


class InvalidConfig(TrustGateError):
    code, status = "invalid_config", 422


class NotFound(TrustGateError):
    code, status = "not_found", 404


class AlreadyExists(TrustGateError):
    code, status = "already_exists", 409


class HasDependents(TrustGateError):
    code, status = "has_dependents", 409


class Conflict(TrustGateError):
    code, status = "conflict", 409


class Unauthorized(TrustGateError):
    """Admin API authentication failure."""

    code, status = "unauthorized", 401


class Forbidden(TrustGateError):
    code, status = "forbidden", 403


class Unauthenticated(TrustGateError):
    """Proxy consumer authentication failure. Every cause (unknown gateway, unknown
    consumer, missing, made-up or revoked key) answers the same body, so a caller without
    a key cannot tell which gateways and consumers exist; ``reason`` says which it was, for
    the server's log only."""

    code, status = "unauthenticated", 401

    def __init__(self, reason: str) -> None:
        super().__init__("unauthenticated")
        self.reason = reason


class PayloadTooLarge(TrustGateError):
    code, status = "payload_too_large", 413


class MethodNotAllowed(TrustGateError):
    code, status = "method_not_allowed", 405


class InvalidRequest(TrustGateError):
    """A proxied payload that cannot be decoded."""

    code, status = "invalid_request", 400


class InvalidModel(TrustGateError):
    code, status = "invalid_model", 400


class ModelNotAllowed(TrustGateError):
    code, status = "model_not_allowed", 403


class ProviderCredentialError(TrustGateError):
    code, status = "provider_credential_error", 502


class NoBackendAvailable(TrustGateError):
    code, status, retryable = "no_backend_available", 503, True


class BackendError(TrustGateError):
    code, status, retryable = "backend_error", 502, True


class UpstreamTimeout(BackendError):
    """The upstream did not answer within the provider timeout: a gateway timeout."""

    code, status = "upstream_timeout", 504


class Unavailable(TrustGateError):
    """A dependency (database, bus) is unreachable; retry later."""

    code, status, retryable = "unavailable", 503, True


class PolicyRejected(TrustGateError):
    """A policy refused the call with its own status, body and headers (reference §3:
    "plugin rejections use the plugin's own status and body"). ``kind`` is the request
    event's ``error_kind`` (``rate_limited``, ``token_budget_exceeded``, ...)."""

    code, status = "policy_rejected", 403

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: tuple[tuple[bytes, bytes], ...] = (),
        *,
        kind: str = "policy_rejected",
    ) -> None:
        super().__init__(kind)
        self.status = status
        self.code = kind
        self.headers = headers
        self._body = body

    def body(self) -> dict[str, Any]:
        return self._body


class RateLimitUnavailable(TrustGateError):
    """A limit's shared counters are unreachable and its policy says ``fail_closed``."""

    code, status, retryable = "rate_limit_unavailable", 503, True
    headers = ((b"retry-after", b"1"),)
