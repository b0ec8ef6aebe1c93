"""Runners: cors, model_allowlist, tool_allowlist and regex_replace.

- ``model_allowlist``: the request's model must match one of the allowed globs, else 403
  ``{"error":{"type":"model_not_allowed","model","allowed"}}`` or, with
  ``behavior_on_disallowed: substitute``, the ``substitute_with`` model is sent instead; a
  request naming no model gets ``default_model`` (without one, the model its route would
  send is checked). ``@provider/model`` is checked by its model too.
- ``tool_allowlist``: the request's tools (Chat ``tools[].function.name``, Messages and
  Responses ``tools[].name``; a built-in Responses tool by its ``type``) are filtered by
  the allow and deny globs; a ``tool_choice`` naming a removed tool is dropped (an
  ``allowed_tools`` choice loses the removed ones); when none is left,
  ``on_empty_after_filter`` rejects (403 ``no_tools_allowed``), sends ``tools: []`` or
  drops the field (``tool_choice`` and ``parallel_tool_calls`` go with it).
- ``cors`` (``runners.cors``) and ``regex_replace`` (``runners.rewrite``).

In ``observe`` nothing is changed: what would have been refused or rewritten is recorded
(the policy's decision is ``observe``, its ``error`` the kind: ``model_not_allowed``,
``model_substituted``, ``model_defaulted``, ``tools_filtered``, ``no_tools_allowed``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from trustgate_core.errors import PolicyRejected
from trustgate_core.plugins.guards import ModelAllowlistSettings, ToolAllowlistSettings
from trustgate_core.policy.engine import Decision, PolicyDeps, PolicyInfo, Runner, RunnerType
from trustgate_core.policy.exchange import PolicyExchange
from trustgate_core.policy.runners.cors import CorsRunner
from trustgate_core.policy.runners.rewrite import RegexReplaceRunner


def compile_globs(patterns: list[str]) -> re.Pattern[str] | None:
    """One regex matching any of ``patterns`` whole (``*``: any run of characters, as
    ``plugins.base.glob_match``), or ``None`` for no pattern."""
    if not patterns:
        return None
    return re.compile(
        "|".join(".*".join(map(re.escape, p.split("*"))) for p in patterns), re.DOTALL
    )


def _recorded(kind: str, status: int = 0, body: dict[str, Any] | None = None) -> PolicyRejected:
    """What an ``observe`` policy would have done, for its record (status 0: no refusal)."""
    return PolicyRejected(status, body or {}, kind=kind)


# --------------------------------------------------------------------------- model_allowlist


class ModelAllowlistRunner(Runner):
    def __init__(
        self, info: PolicyInfo, settings: ModelAllowlistSettings, deps: PolicyDeps
    ) -> None:
        super().__init__(info, settings, deps)
        self._allowed = compile_globs(settings.allowed_models)
        self._listed = list(settings.allowed_models)
        self._substitute = (
            settings.substitute_with if settings.behavior_on_disallowed == "substitute" else None
        )
        self._default = settings.default_model

    def allows(self, model: str) -> bool:
        allowed = self._allowed
        assert allowed is not None  # the settings require one pattern
        if allowed.fullmatch(model) is not None:
            return True
        # ``@provider/model`` pins a provider: the model is what the list names
        return model.startswith("@") and allowed.fullmatch(model.partition("/")[2]) is not None

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        named = x.doc.get("model")
        if not isinstance(named, str) or not named:
            if self._default is not None:
                if self.mode == "observe":
                    raise _recorded("model_defaulted")
                x.set_model(self._default)
                return None
            named = x.requested_model  # what the route would send
            if named is not None and self.allows(named):
                return None
        elif self.allows(named):
            return None
        if self._substitute is not None:
            if self.mode == "observe":
                raise _recorded("model_substituted")
            x.set_model(self._substitute)
            return None
        raise PolicyRejected(
            403,
            {"error": {"type": "model_not_allowed", "model": named, "allowed": self._listed}},
            kind="model_not_allowed",
        )


# --------------------------------------------------------------------------- tool_allowlist

_CHOICE_KINDS: Final = frozenset(
    {"function", "tool", "custom", "allowed_tools", "auto", "any", "none", "required"}
)


def tool_name(tool: Any) -> str:
    """A tool's name in any of the three formats; a built-in tool's ``type``."""
    if not isinstance(tool, dict):
        return ""
    name = tool.get("name")
    if isinstance(name, str):
        return name
    for inner in ("function", "custom"):
        spec = tool.get(inner)
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            return str(spec["name"])
    kind = tool.get("type")
    return kind if isinstance(kind, str) else ""


class ToolAllowlistRunner(Runner):
    def __init__(self, info: PolicyInfo, settings: ToolAllowlistSettings, deps: PolicyDeps) -> None:
        super().__init__(info, settings, deps)
        self._allow = compile_globs(settings.allow_tools)
        self._deny = compile_globs(settings.deny_tools)
        self._on_empty = settings.on_empty_after_filter

    def keeps(self, name: str) -> bool:
        if self._allow is not None and self._allow.fullmatch(name) is None:
            return False
        return self._deny is None or self._deny.fullmatch(name) is None

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        doc = x.doc
        tools = doc.get("tools")
        if not isinstance(tools, list) or not tools:
            return None
        kept = [tool for tool in tools if self.keeps(tool_name(tool))]
        if len(kept) == len(tools):
            return None
        if not kept and self._on_empty == "reject":
            raise PolicyRejected(
                403,
                {
                    "error": {
                        "type": "no_tools_allowed",
                        "requested": [tool_name(tool) for tool in tools],
                        "allowed_after_filter": [],
                    }
                },
                kind="no_tools_allowed",
            )
        if self.mode == "observe":
            raise _recorded("tools_filtered")
        x.dirty = True
        if kept:
            doc["tools"] = kept
            self._fix_choice(doc)
            return None
        if self._on_empty == "strip_tools_field":
            del doc["tools"]
        else:
            doc["tools"] = []
        doc.pop("tool_choice", None)
        doc.pop("parallel_tool_calls", None)
        return None

    def _fix_choice(self, doc: dict[str, Any]) -> None:
        """Drop a ``tool_choice`` naming a removed tool; an ``allowed_tools`` choice keeps
        the allowed ones (Chat nests them under ``allowed_tools``, Responses does not)."""
        choice = doc.get("tool_choice")
        if not isinstance(choice, dict):
            return
        if choice.get("type") == "allowed_tools":
            holder = choice.get("allowed_tools")
            holder = holder if isinstance(holder, dict) else choice
            listed = holder.get("tools")
            if isinstance(listed, list):
                holder["tools"] = [tool for tool in listed if self.keeps(tool_name(tool))]
                if not holder["tools"]:
                    del doc["tool_choice"]
            return
        name = tool_name(choice)
        if name and name not in _CHOICE_KINDS and not self.keeps(name):
            del doc["tool_choice"]


RUNNERS: dict[str, RunnerType] = {
    "cors": CorsRunner,
    "model_allowlist": ModelAllowlistRunner,
    "tool_allowlist": ToolAllowlistRunner,
    "regex_replace": RegexReplaceRunner,
}
