"""Where things are: the plane's base URL, a consumer's MCP URL (the resource tokens are
bound to) and the metadata URLs derived from it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from trustgate_core.service.asgi import Scope

PRM_PREFIX = "/.well-known/oauth-protected-resource"
AS_METADATA = "/.well-known/oauth-authorization-server"
JWKS = "/.well-known/jwks.json"
REGISTER = "/oauth/register"
AUTHORIZE = "/oauth/authorize"
TOKEN = "/oauth/token"
CALLBACK = "/oauth/callback"
IDP_START = "/oauth/idp"

# a Host header we are willing to put in a URL (and so in JSON and HTML)
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MCP_PATH = re.compile(r"^/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})/mcp$")


def base_url(scope: Scope, public_url: str) -> str | None:
    """``MCP_PUBLIC_URL``, or the request's scheme and Host (None: no usable Host)."""
    if public_url:
        return public_url.rstrip("/")
    host = ""
    for name, value in scope.get("headers") or ():
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        server = scope.get("server")
        if not server:
            return None
        host = f"{server[0]}:{server[1]}"
    if not _HOST.match(host):
        return None
    scheme = "https" if scope.get("scheme") == "https" else "http"
    return f"{scheme}://{host.lower()}"


def mcp_url(base: str, slug: str) -> str:
    return f"{base}/{slug}/mcp"


def canonical(url: str) -> str:
    """``url`` with its scheme and host lower-cased (RFC 3986 §6.2.2.1), as the tokens'
    audience is spelt."""
    cut = url.find("/", url.find("://") + 3) if "://" in url else -1
    return url.lower() if cut < 0 else url[:cut].lower() + url[cut:]


def valid_slug(slug: str) -> bool:
    return _SLUG.match(slug) is not None


def slug_of(resource: str, base: str) -> str | None:
    """The consumer slug of ``resource`` if it is an MCP URL under ``base``."""
    if not resource.startswith(base + "/"):
        return None
    match = _MCP_PATH.match(resource[len(base) :])
    return match.group(1) if match else None


def resource_metadata_url(resource: str) -> str:
    """The RFC 9728 metadata URL of a resource: the well-known prefix before its path."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{PRM_PREFIX}{parts.path}"


def loopback(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")
