"""MCP test helpers: real ``mcp``-SDK upstream servers (`servers`), served over
streamable HTTP in this process or in a process of their own."""
