"""TrustGate's MCP plane: ``POST /{consumer_slug}/mcp`` aggregates the consumer's MCP
registries for agents, from an in-memory config replica, with sessions any replica serves."""

__version__ = "0.1.0"
