"""The admin's MCP client: one short session to an upstream (the official SDK's
``ClientSession`` over streamable HTTP) to list its tools, every page followed.

Failures come back as ``ProbeFailed`` naming the stage reached (``token``, ``connect``,
``initialize``, ``list_tools``) with a message built from HTTP statuses, exception class
names and the server's JSON-RPC error (which the caller scrubs of secrets): httpx's own
messages may carry URLs and are not repeated."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import PaginatedRequestParams

from trustgate_admin.domain.upstream import McpConnection, ProbeFailed, TokenRequest

#: Pages of ``tools/list`` followed at most (a server that never stops paging is cut).
MAX_PAGES = 100
TOOL_FIELDS = ("name", "title", "description", "inputSchema", "annotations")


@dataclass
class ToolListing:
    tools: list[dict[str, Any]]
    protocol_version: str
    server_name: str


@dataclass
class _Progress:
    stage: str = "connect"
    statuses: list[int] = field(default_factory=list)

    async def on_response(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self.statuses.append(response.status_code)


async def list_tools(conn: McpConnection, within: float) -> ToolListing:
    """Initialize a session with the upstream and list every tool, within ``within`` seconds."""
    progress = _Progress()
    try:
        with anyio.fail_after(within):
            async with httpx2.AsyncClient(
                timeout=within, event_hooks={"response": [progress.on_response]}
            ) as http:
                token = None
                if conn.token_request is not None:  # before the server's headers are set:
                    progress.stage = "token"  # the token endpoint gets none of them
                    token = await _client_credentials(http, conn.token_request)
                http.headers.update(conn.headers)
                if token is not None:
                    http.headers["Authorization"] = f"Bearer {token}"
                progress.stage = "connect"
                return await _session(conn.url, http, progress)
    except ProbeFailed:
        raise
    except TimeoutError as exc:
        raise ProbeFailed(progress.stage, f"no answer within {within:g}s", timed_out=True) from exc
    except Exception as exc:
        raise _failure(exc, progress) from exc


async def _session(url: str, http: httpx2.AsyncClient, progress: _Progress) -> ToolListing:
    async with (
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        progress.stage = "initialize"
        init = await session.initialize()
        progress.stage = "list_tools"
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(_tool(t.model_dump(by_alias=True, mode="json")) for t in page.tools)
            cursor = page.next_cursor
            if not cursor or cursor in seen:
                break
            seen.add(cursor)
        progress.stage = "done"
        return ToolListing(tools, str(init.protocol_version), init.server_info.name)


def _tool(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: doc.get(k) for k in TOOL_FIELDS if doc.get(k) is not None or k == "description"}
    out.setdefault("inputSchema", {"type": "object"})
    return out


async def _client_credentials(http: httpx2.AsyncClient, req: TokenRequest) -> str:
    form = {"grant_type": "client_credentials", **req.form}
    headers = {"Accept": "application/json"}
    if req.basic_auth:  # RFC 6749 §2.3.1: both parts form-urlencoded before base64
        pair = f"{quote(req.client_id, safe='')}:{quote(req.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form.update(client_id=req.client_id, client_secret=req.client_secret)
    response = await http.post(req.token_url, data=form, headers=headers)
    if response.status_code != 200:
        raise ProbeFailed(
            "token",
            f"the token endpoint answered HTTP {response.status_code}",
            status_code=response.status_code,
        )
    try:
        token = response.json().get("access_token")
    except ValueError:
        token = None
    if not isinstance(token, str) or not token:
        raise ProbeFailed("token", "the token endpoint's answer has no access_token")
    return token


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _failure(exc: BaseException, progress: _Progress) -> ProbeFailed:
    leaf = next(
        (e for e in _leaves(exc) if not isinstance(e, anyio.get_cancelled_exc_class())), exc
    )
    status = progress.statuses[-1] if progress.statuses else None
    if isinstance(leaf, ProbeFailed):
        return leaf
    if isinstance(leaf, TimeoutError | httpx2.TimeoutException):
        return ProbeFailed(progress.stage, "the MCP server did not answer in time", timed_out=True)
    if isinstance(leaf, httpx2.ConnectError | OSError):
        return ProbeFailed(
            "connect", f"could not connect to the MCP server ({type(leaf).__name__})"
        )
    if isinstance(leaf, httpx2.TransportError):
        return ProbeFailed(progress.stage, f"the connection failed ({type(leaf).__name__})")
    if status is not None:
        return ProbeFailed(
            progress.stage, f"the MCP server answered HTTP {status}", status_code=status
        )
    if isinstance(leaf, MCPError):
        return ProbeFailed(
            progress.stage, f"the MCP server answered error {leaf.code}: {leaf.message}"
        )
    return ProbeFailed(progress.stage, f"the MCP session failed ({type(leaf).__name__})")
