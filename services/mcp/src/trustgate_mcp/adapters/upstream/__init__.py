"""The upstream MCP servers, over streamable HTTP: `Upstreams` implements ``UpstreamPort``."""

from trustgate_mcp.adapters.upstream.client import Upstreams

__all__ = ["Upstreams"]
