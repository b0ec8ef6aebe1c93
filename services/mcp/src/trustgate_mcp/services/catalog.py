"""A consumer's catalog from its servers' live lists.

Every list of every server is asked for at once (``eagerly``: a cached answer costs no
task). ``UpstreamPort.listing`` keeps lists for ``MCP_LIST_TTL`` and returns the same list
objects while it holds them, so the built catalog is memoized on those identities: an
unchanged catalog is not rebuilt per call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast, get_args
from uuid import UUID

from trustgate_core.models import Consumer, Registry
from trustgate_mcp.domain.catalog import Catalog, ServerLists, build_catalog
from trustgate_mcp.services.eager import eagerly
from trustgate_mcp.services.ports import (
    Caller,
    ListKind,
    RpcFailure,
    UpstreamPort,
    UpstreamUnavailable,
)

METHOD_NOT_FOUND = -32601
_KINDS: tuple[ListKind, ...] = get_args(ListKind)
# a list a server does not implement: always this object, so the memo still recognises
# that server's lists (never mutated: the catalog copies what it lists)
_NOT_IMPLEMENTED: list[dict[str, Any]] = []

# one server's outcome: its four lists in ``_KINDS`` order, or why it is unreachable
_Fetched = tuple[list[dict[str, Any]], ...] | UpstreamUnavailable


class ServerUnavailable(UpstreamUnavailable):
    """A server of a consumer that fails closed is unavailable: the client is told
    which (never why: the reason may name a URL)."""

    def __init__(self, registry: Registry, reason: UpstreamUnavailable) -> None:
        super().__init__(str(reason))
        self.registry = registry


@dataclass(slots=True)
class _Memo:
    """The last catalog built for a consumer and what it was built from (compared by
    identity), with the last allow-list's view of it."""

    consumer: Consumer
    inputs: tuple[tuple[Registry, _Fetched], ...]
    catalog: Catalog
    allowed_tool: Callable[[str], bool] | None = None
    allowed: Catalog | None = None

    def holds(self, consumer: Consumer, inputs: tuple[tuple[Registry, _Fetched], ...]) -> bool:
        if self.consumer is not consumer or len(self.inputs) != len(inputs):
            return False
        for (registry, fetched), (kept_registry, kept) in zip(inputs, self.inputs, strict=True):
            if registry is not kept_registry or not _same(fetched, kept):
                return False
        return True


def _same(fetched: _Fetched, kept: _Fetched) -> bool:
    """The same lists (identity), or unreachable both times."""
    if isinstance(fetched, tuple) and isinstance(kept, tuple):
        return all(map(operator.is_, fetched, kept))
    return isinstance(fetched, UpstreamUnavailable) and isinstance(kept, UpstreamUnavailable)


class CatalogService:
    def __init__(self, upstreams: UpstreamPort) -> None:
        self._upstreams = upstreams
        # one entry per consumer id: a consumer's new version replaces the old one's
        self._memos: dict[UUID, _Memo] = {}

    async def catalog(
        self,
        caller: Caller,
        registries: Sequence[Registry],
        *,
        allowed_tool: Callable[[str], bool] | None = None,
    ) -> Catalog:
        """The catalog of ``caller.consumer`` over ``registries`` (its MCP registries).

        A server that cannot be reached is left out and named in ``skipped`` when the
        consumer's ``fail_mode`` is open (the default); with ``closed`` its
        `UpstreamUnavailable` is raised. A server that does not implement a list
        (-32601) has an empty one.
        """
        consumer = caller.consumer
        answers = await eagerly(
            [
                self._upstreams.listing(registry, caller, kind)
                for registry in registries
                for kind in _KINDS
            ]
        )
        n = len(_KINDS)
        fetched = [
            self._fetched(registry, answers[i * n : (i + 1) * n])
            for i, registry in enumerate(registries)
        ]
        inputs = tuple(zip(registries, fetched, strict=True))
        memo = self._memos.get(consumer.id)
        if memo is None or not memo.holds(consumer, inputs):
            memo = _Memo(consumer, inputs, self._build(consumer, inputs))
            self._memos[consumer.id] = memo
        if allowed_tool is None:
            return memo.catalog
        if memo.allowed is None or memo.allowed_tool is not allowed_tool:
            memo.allowed_tool, memo.allowed = allowed_tool, memo.catalog.only(allowed_tool)
        return memo.allowed

    @staticmethod
    def _build(consumer: Consumer, inputs: tuple[tuple[Registry, _Fetched], ...]) -> Catalog:
        lists: list[ServerLists] = []
        skipped: list[UUID] = []
        for registry, fetched in inputs:
            if isinstance(fetched, UpstreamUnavailable):
                if consumer.fail_mode == "closed":
                    raise ServerUnavailable(registry, fetched) from fetched
                skipped.append(registry.id)
                continue
            tools, resources, templates, prompts = fetched
            lists.append(ServerLists(registry, tools, resources, templates, prompts))
        return build_catalog(consumer, lists, skipped=tuple(skipped))

    @staticmethod
    def _fetched(registry: Registry, answers: Sequence[object]) -> _Fetched:
        """One server's four answers as its lists, or why it counts as unreachable."""
        lists: list[list[dict[str, Any]]] = []
        for answer in answers:
            if isinstance(answer, UpstreamUnavailable):
                return answer
            if isinstance(answer, RpcFailure):
                if answer.code != METHOD_NOT_FOUND:
                    return UpstreamUnavailable(
                        f"{registry.name}: list answered error {answer.code}"
                    )
                lists.append(_NOT_IMPLEMENTED)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                lists.append(cast("list[dict[str, Any]]", answer))
        return tuple(lists)
