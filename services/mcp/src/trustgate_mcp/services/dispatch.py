"""The plane's use case: one JSON-RPC request of a caller, answered from the consumer's
catalog and its upstream MCP servers.

``initialize`` opens an upstream session on each of the consumer's servers at once and
seals them into the session id it hands out (``domain.sessions``); every later request
carries that id, so any replica serves it. An upstream session that was not opened (its
server was down under ``fail_mode: open``, or the server was bound later) is opened on
first use; one the upstream no longer knows (``SessionExpired``) is opened again and the
call retried once. Either way the new upstream session goes into the shared store
(``services.session_store``) under the session's nonce, so the other replicas use it
instead of opening yet another.

A request of the stateless revision (``Context.modern``: no session) is served on this
replica's upstream session per registry and upstream credential (``shared_session``, the
session lists are fetched on), opened again once when the upstream forgot it.

``tools/call``, ``resources/read`` and ``prompts/get`` run the consumer's policy chain
(``pre_request`` before the upstream; ``post_response`` after every call that reached
``pre_request``) and are recorded on an ``McpCall`` for the request event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any
from uuid import UUID

from trustgate_core.errors import TrustGateError
from trustgate_core.models import Registry
from trustgate_core.policy import Header, McpExchange, rpc_error
from trustgate_mcp.domain.call import McpCall
from trustgate_mcp.domain.catalog import Catalog
from trustgate_mcp.domain.modern import discover_result, upstream_params
from trustgate_mcp.domain.rpc import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    POLICY_BLOCKED,
    RESOURCE_NOT_FOUND,
    UNAVAILABLE,
    RpcError,
    auth_required,
    negotiate,
    optional_object,
    params_object,
    required_string,
    string_values,
)
from trustgate_mcp.domain.sessions import (
    SessionClaims,
    SessionSealer,
    credential_of,
    new_nonce,
)
from trustgate_mcp.services.catalog import CatalogService, ServerUnavailable
from trustgate_mcp.services.plans import McpPlan
from trustgate_mcp.services.ports import (
    Caller,
    ConsentRequired,
    RpcFailure,
    SessionExpired,
    UpstreamAuthRequired,
    UpstreamPort,
    UpstreamSession,
    UpstreamUnavailable,
)
from trustgate_mcp.services.session_store import SessionStore

log = logging.getLogger(__name__)


class SessionNotFound(Exception):
    """The session id does not open, has expired, was ended, or belongs to another
    consumer or credential: HTTP 404, and the client initializes again."""


@dataclass(slots=True)
class Session:
    claims: SessionClaims
    upstreams: dict[UUID, UpstreamSession]


@dataclass(slots=True)
class Context:
    """One request: who calls, the consumer's plan, its session (``None`` for
    ``initialize`` and the stateless revision, ``modern``), the request as received
    (policies read it) and its call record (``None`` for methods that are not calls)."""

    caller: Caller
    plan: McpPlan
    session: Session | None = None
    modern: bool = False
    body: bytes = b""
    request_headers: Sequence[Header] = ()
    client_host: str | None = None
    call: McpCall | None = None
    response_headers: list[Header] = field(default_factory=list)


def _unavailable(registry: Registry | None) -> RpcError:
    """No reason from the upstream (it may name a URL or a credential): only the server."""
    where = f"the MCP server {registry.name!r}" if registry is not None else "an MCP server"
    return RpcError(UNAVAILABLE, f"{where} is unavailable", kind="upstream_connect", status=503)


def _auth_required(registry: Registry, failure: UpstreamAuthRequired) -> RpcError:
    """-32003: the server needs the caller to authenticate (or, mode forwarded, to connect
    their account there: the URL comes along). The message is the auth's own, for the
    caller: it names no secret."""
    url = failure.connect_url if isinstance(failure, ConsentRequired) else None
    return auth_required(registry.name, f"the MCP server {registry.name!r}: {failure}", url)


def _callers_credential(registry: Registry) -> bool:
    """Whether the server's auth mode sends the caller's own credential upstream."""
    auth = (registry.mcp_target or {}).get("auth")
    return isinstance(auth, dict) and auth.get("mode") in ("passthrough", "exchange", "forwarded")


class Dispatcher:
    def __init__(
        self,
        upstreams: UpstreamPort,
        catalogs: CatalogService,
        store: SessionStore,
        sealer: SessionSealer,
        *,
        session_ttl: float,
        server_version: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstreams = upstreams
        self.catalogs = catalogs
        self.store = store
        self.sealer = sealer
        self.session_ttl = session_ttl
        self.server_version = server_version
        self.clock = clock
        self.sessions_opened = 0  # initialize answered
        self.upstream_reopened = 0  # upstream sessions opened after initialize
        # (session nonce, registry id) -> the upstream session being opened for it
        self._reopening: dict[tuple[str, UUID], asyncio.Task[UpstreamSession]] = {}
        self._methods: dict[str, Callable[[Context, dict[str, Any]], Awaitable[Any]]] = {
            "ping": self._ping,
            "tools/list": self._tools_list,
            "resources/list": self._resources_list,
            "resources/templates/list": self._templates_list,
            "prompts/list": self._prompts_list,
            "tools/call": self._tools_call,
            "resources/read": self._resources_read,
            "prompts/get": self._prompts_get,
        }

    # -- sessions --------------------------------------------------------------------------
    async def initialize(self, ctx: Context, raw: object) -> tuple[dict[str, Any], str]:
        """The ``initialize`` result and the session id to hand out."""
        params = params_object(raw)
        version = negotiate(params.get("protocolVersion"))
        caller, plan = ctx.caller, ctx.plan
        outcomes = await asyncio.gather(
            *(self.upstreams.open(registry, caller) for registry in plan.registries),
            return_exceptions=True,
        )
        opened: dict[UUID, tuple[str | None, str]] = {}
        failed: Registry | None = None
        for registry, outcome in zip(plan.registries, outcomes, strict=True):
            if isinstance(outcome, UpstreamSession):
                opened[registry.id] = (outcome.session_id, outcome.protocol_version)
            elif not isinstance(outcome, Exception):  # cancelled
                raise outcome
            elif isinstance(outcome, UpstreamAuthRequired):
                pass  # the caller's, not the server's: its calls say what to do (-32003)
            else:  # open: opened on first use; closed: initialize fails
                if not isinstance(outcome, UpstreamUnavailable | RpcFailure):
                    log.warning("mcp: opening %s failed: %r", registry.name, outcome)
                failed = failed or registry
        if failed is not None and plan.consumer.fail_mode == "closed":
            await self._close_all(caller, plan, opened)
            raise _unavailable(failed)
        now = int(self.clock())
        claims = SessionClaims(
            gateway_id=caller.gateway.id,
            consumer_id=caller.consumer.id,
            credential=credential_of(caller.auth_id, caller.subject),
            protocol_version=version,
            issued_at=now,
            expires_at=now + int(self.session_ttl),
            nonce=new_nonce(),
            upstreams=opened,
        )
        self.sessions_opened += 1
        result = {
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": False},
                "resources": {"listChanged": False},
                "prompts": {"listChanged": False},
            },
            "serverInfo": {
                "name": "trustgate",
                "version": f"{self.server_version}+{plan.fingerprint}",
            },
        }
        return result, self.sealer.seal(claims)

    async def session(self, session_id: str, caller: Caller) -> Session:
        """The session ``session_id`` names, for this caller; `SessionNotFound` else."""
        claims = self.sealer.open(session_id, self.clock())
        if (
            claims is None
            or claims.gateway_id != caller.gateway.id
            or claims.consumer_id != caller.consumer.id
            or claims.credential != credential_of(caller.auth_id, caller.subject)
        ):
            raise SessionNotFound
        state = await self.store.state(claims.nonce)
        if state.terminated:
            raise SessionNotFound
        upstreams = {
            rid: UpstreamSession(rid, sid, version)
            for rid, (sid, version) in {**claims.upstreams, **state.replacements}.items()
        }
        return Session(claims, upstreams)

    async def end(self, ctx: Context) -> None:
        """``DELETE``: the session is refused from now on, on every replica; its upstream
        sessions are closed (best effort)."""
        session = ctx.session
        if session is None:
            return
        claims = session.claims
        await self.store.terminate(claims.nonce, claims.remaining(self.clock()))
        opened = {rid: (s.session_id, s.protocol_version) for rid, s in session.upstreams.items()}
        await self._close_all(ctx.caller, ctx.plan, opened)

    async def _close_all(
        self, caller: Caller, plan: McpPlan, opened: dict[UUID, tuple[str | None, str]]
    ) -> None:
        closing = [
            self.upstreams.close(
                registry, UpstreamSession(registry.id, *opened[registry.id]), caller
            )
            for registry in plan.registries
            if registry.id in opened
        ]
        await asyncio.gather(*closing, return_exceptions=True)

    def discover(self, ctx: Context) -> dict[str, Any]:
        """``server/discover`` (the stateless revision): nothing is opened."""
        return discover_result("trustgate", f"{self.server_version}+{ctx.plan.fingerprint}")

    # -- requests --------------------------------------------------------------------------
    async def handle(self, ctx: Context, method: str, raw: object) -> Any:
        """The result of request ``method``; raises `RpcError`."""
        handler = self._methods.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"method not found: {method}")
        return await handler(ctx, params_object(raw))

    async def _ping(self, ctx: Context, params: dict[str, Any]) -> Any:
        return {}

    async def _catalog(self, ctx: Context) -> Catalog:
        try:
            return await self.catalogs.catalog(
                ctx.caller, ctx.plan.registries, allowed_tool=ctx.plan.allows_tool
            )
        except ServerUnavailable as failed:
            if isinstance(failed.__cause__, UpstreamAuthRequired):
                raise _auth_required(failed.registry, failed.__cause__) from None
            raise _unavailable(failed.registry) from None
        except UpstreamUnavailable:
            raise _unavailable(None) from None

    async def _tools_list(self, ctx: Context, params: dict[str, Any]) -> Any:
        return {"tools": (await self._catalog(ctx)).tools}

    async def _resources_list(self, ctx: Context, params: dict[str, Any]) -> Any:
        return {"resources": (await self._catalog(ctx)).resources}

    async def _templates_list(self, ctx: Context, params: dict[str, Any]) -> Any:
        return {"resourceTemplates": (await self._catalog(ctx)).resource_templates}

    async def _prompts_list(self, ctx: Context, params: dict[str, Any]) -> Any:
        return {"prompts": (await self._catalog(ctx)).prompts}

    async def _tools_call(self, ctx: Context, params: dict[str, Any]) -> Any:
        name = required_string(params, "name")
        optional_object(params, "arguments")
        if ctx.call is not None:
            ctx.call.tool = name
        catalog = await self._catalog(ctx)
        route = catalog.tool(name)
        if route is None:
            if not ctx.plan.allows_tool(name):
                raise RpcError(
                    POLICY_BLOCKED,
                    f"the tool {name!r} is not allowed",
                    {"error": "tool_not_allowed", "status": 403},
                    kind="policy_rejected",
                    status=403,
                )
            await self._unconnected(ctx, catalog)
            raise RpcError(INVALID_PARAMS, f"unknown tool: {name}", kind="not_found", status=404)
        upstream_params = {**params, "name": route.upstream_name}
        result = await self._call(
            ctx, route.registry, route.upstream_name, "tools/call", params, upstream_params
        )
        if ctx.call is not None and isinstance(result, dict):
            ctx.call.is_error = result.get("isError") is True
        return result

    async def _unconnected(self, ctx: Context, catalog: Catalog) -> None:
        """A tool the catalog does not have while a server is left out of it because the
        caller brought no credential its auth can use (passthrough, exchange: a token;
        forwarded: the user has not connected their account there; its lists can only be
        asked for with that credential): -32003, with the connect URL for forwarded,
        rather than "unknown tool"."""
        for registry in ctx.plan.registries:
            if registry.id not in catalog.skipped or not _callers_credential(registry):
                continue
            try:
                await self.upstreams.listing(registry, ctx.caller, "tools")
            except UpstreamAuthRequired as failure:
                raise _auth_required(registry, failure) from None
            except (UpstreamUnavailable, RpcFailure):
                continue

    async def _resources_read(self, ctx: Context, params: dict[str, Any]) -> Any:
        uri = required_string(params, "uri")
        if ctx.call is not None:
            ctx.call.tool = uri
        route = (await self._catalog(ctx)).resource(uri)
        if route is None:
            raise RpcError(
                RESOURCE_NOT_FOUND, "resource not found", {"uri": uri}, kind="not_found", status=404
            )
        return await self._call(
            ctx, route.registry, route.upstream_name, "resources/read", params, params
        )

    async def _prompts_get(self, ctx: Context, params: dict[str, Any]) -> Any:
        name = required_string(params, "name")
        string_values(params, "arguments")
        if ctx.call is not None:
            ctx.call.tool = name
        route = (await self._catalog(ctx)).prompt(name)
        if route is None:
            raise RpcError(INVALID_PARAMS, f"unknown prompt: {name}", kind="not_found", status=404)
        upstream_params = {**params, "name": route.upstream_name}
        return await self._call(
            ctx, route.registry, route.upstream_name, "prompts/get", params, upstream_params
        )

    # -- a call: policies around the upstream ----------------------------------------------
    async def _call(
        self,
        ctx: Context,
        registry: Registry,
        upstream_name: str,
        method: str,
        params: dict[str, Any],
        upstream_params: dict[str, Any],
    ) -> Any:
        call = ctx.call
        if call is not None:
            call.registry_id = registry.id
            call.server = registry.name
            call.upstream_tool = upstream_name
        chain = ctx.plan.chain
        if not chain.stages:
            return await self._upstream(ctx, registry, method, upstream_params)
        caller = ctx.caller
        x = McpExchange(
            caller.gateway,
            caller.consumer,
            ctx.request_headers,
            method=method,
            body=ctx.body,
            params=params,
            auth_id=caller.auth_id,
            subject=caller.subject,
            client_host=ctx.client_host,
        )
        if call is not None:
            call.policy_chain = x.records
        try:
            if "pre_request" in chain.stages:
                try:
                    await chain.run("pre_request", x)
                except TrustGateError as refusal:
                    x.status = refusal.status
                    error = rpc_error(refusal)
                    raise RpcError(
                        error["code"],
                        error["message"],
                        error.get("data"),
                        kind=refusal.code,
                        status=refusal.status,
                    ) from None
                finally:
                    ctx.response_headers.extend(x.response_headers)
                    x.response_headers.clear()
            result = await self._upstream(ctx, registry, method, upstream_params)
            x.status = 200
            x.is_error = isinstance(result, dict) and result.get("isError") is True
            return result
        except RpcError:
            x.is_error = True
            if not x.status:
                x.status = 200
            raise
        finally:
            if "post_response" in chain.stages:
                await chain.run("post_response", x)
            if call is not None:
                call.policies_time = x.policies_time

    async def _upstream(
        self, ctx: Context, registry: Registry, method: str, params: dict[str, Any]
    ) -> Any:
        call = ctx.call
        if call is not None:
            call.upstream_start = perf_counter()
        try:
            if ctx.modern:
                return await self._shared(ctx.caller, registry, method, upstream_params(params))
            session = ctx.session
            upstream = session.upstreams.get(registry.id) if session is not None else None
            if upstream is None and session is not None:
                upstream = await self._reopen(ctx, registry, None)
            try:
                return await self.upstreams.request(registry, upstream, ctx.caller, method, params)
            except SessionExpired:
                if session is None:
                    raise
                upstream = await self._reopen(ctx, registry, upstream)
                return await self.upstreams.request(registry, upstream, ctx.caller, method, params)
        except RpcFailure as failure:
            raise RpcError(
                failure.code, failure.message, failure.data, kind="upstream_error"
            ) from None
        except UpstreamAuthRequired as failure:
            raise _auth_required(registry, failure) from None
        except UpstreamUnavailable:
            raise _unavailable(registry) from None
        finally:
            if call is not None:
                call.upstream_end = perf_counter()

    async def _shared(
        self, caller: Caller, registry: Registry, method: str, params: dict[str, Any]
    ) -> Any:
        """A stateless request, on this replica's shared upstream session."""
        upstream = await self.upstreams.shared_session(registry, caller, None)
        try:
            return await self.upstreams.request(registry, upstream, caller, method, params)
        except SessionExpired:
            upstream = await self.upstreams.shared_session(registry, caller, upstream)
            return await self.upstreams.request(registry, upstream, caller, method, params)

    async def _reopen(
        self, ctx: Context, registry: Registry, stale: UpstreamSession | None
    ) -> UpstreamSession:
        """A live upstream session for ``registry`` in place of ``stale`` (None: never
        opened): another replica's replacement if there is a newer one, else a new one,
        kept for the others. Concurrent requests of the session share one opening."""
        session = ctx.session
        assert session is not None
        key = (session.claims.nonce, registry.id)
        opening = self._reopening.get(key)
        if opening is None:
            opening = asyncio.get_running_loop().create_task(
                self._replacement(ctx.caller, session, registry, stale)
            )
            self._reopening[key] = opening
            opening.add_done_callback(lambda _: self._reopening.pop(key, None))
        upstream = await asyncio.shield(opening)
        session.upstreams[registry.id] = upstream
        return upstream

    async def _replacement(
        self, caller: Caller, session: Session, registry: Registry, stale: UpstreamSession | None
    ) -> UpstreamSession:
        claims = session.claims
        state = await self.store.state(claims.nonce)
        newer = state.replacements.get(registry.id)
        if newer is not None and (stale is None or newer[0] != stale.session_id):
            return UpstreamSession(registry.id, *newer)
        upstream = await self.upstreams.open(registry, caller)
        self.upstream_reopened += 1
        await self.store.replace(
            claims.nonce,
            registry.id,
            (upstream.session_id, upstream.protocol_version),
            claims.remaining(self.clock()),
        )
        return upstream
