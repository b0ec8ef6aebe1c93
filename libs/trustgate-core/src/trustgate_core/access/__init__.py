"""Who a data-plane request is for and who sends it: gateway discovery (header or Host,
with the base domain as a parameter) and consumer API-key authentication. Pure: reads a
``ReplicaState``; shared by the proxy and the MCP plane."""

from trustgate_core.access.auth import api_key_from_headers, authenticate
from trustgate_core.access.discovery import DiscoveryMode, discover_gateway, ensure_active

__all__ = [
    "DiscoveryMode",
    "api_key_from_headers",
    "authenticate",
    "discover_gateway",
    "ensure_active",
]
