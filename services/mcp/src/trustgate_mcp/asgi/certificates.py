"""The client certificate a request to ``/{slug}/mcp`` presents, for the mtls auths.

It is the one the client proved in this listener's TLS handshake (uvicorn under core's
guarded protocol puts the chain in ``scope["extensions"]["tls"]["client_cert_chain"]``),
or the one in ``X-Forwarded-Client-Cert`` when the TCP peer is a ``TRUST_XFCC_FROM``
proxy; the header from any other peer is ignored (core's `ClientCertificates` decides
and logs). A plain-HTTP request without the header costs nothing more.
"""

from __future__ import annotations

from typing import Final

from trustgate_core.access.mtls import ClientCertificates, Presented
from trustgate_core.service.asgi import Scope

XFCC: Final = b"x-forwarded-client-cert"


def presented(scope: Scope, certificates: ClientCertificates, xfcc: str | None) -> Presented | None:
    """The certificate and the intermediates sent with it; None when there is none (or
    only a header from a peer that is not trusted). ``xfcc``: the request's
    ``X-Forwarded-Client-Cert`` headers, joined (read in the endpoint's one pass)."""
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if extensions else None
    if xfcc is None and tls is None:
        return None
    chain = tls.get("client_cert_chain") if tls else None
    client = scope.get("client")
    found = certificates.presented(chain, xfcc, client[0] if client else None)
    return None if found is None else (found[0], found[1])
