"""The proxy's own error codes (reference §3), on top of the core hierarchy.

The core hierarchy already has ``invalid_auth_request``, ``unauthenticated``,
``forbidden``, ``not_found``, ``payload_too_large``, ``no_backend_available``,
``backend_error`` and ``unavailable``; these are the proxy-only ones.
"""

from __future__ import annotations

from trustgate_core.errors import TrustGateError


class MethodNotAllowed(TrustGateError):
    code, status = "method_not_allowed", 405


class InvalidRequest(TrustGateError):
    """The payload cannot be decoded."""

    code, status = "invalid_request", 400


class InvalidModel(TrustGateError):
    code, status = "invalid_model", 400


class ModelNotAllowed(TrustGateError):
    code, status = "model_not_allowed", 403


class ProviderCredentialError(TrustGateError):
    code, status = "provider_credential_error", 502


class UpstreamTimeout(TrustGateError):
    code, status, retryable = "backend_error", 502, True
