"""Which roles a token's claims select: a role's ``oidc_mapping`` is
``{match: any|all, claims: [{path, op: equals|contains_any|contains_all, values}]}``; a
``path`` is dotted (``realm_access.roles``). A role without a mapping, or with no rules, is
never selected: a role is granted only by what the token says."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trustgate_core.models import Role


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, list):
        return {str(v) for v in value}
    if isinstance(value, str):
        return {value}
    if isinstance(value, bool):
        return {"true" if value else "false"}
    return {str(value)}


def _rule_holds(claims: Mapping[str, Any], rule: Any) -> bool:
    if not isinstance(rule, Mapping) or not isinstance(rule.get("path"), str):
        return False
    wanted = _as_set(rule.get("values"))
    value = _claim(claims, rule["path"])
    op = rule.get("op", "equals")
    if op == "equals":
        return not isinstance(value, (list, dict)) and bool(_as_set(value) & wanted)
    got = _as_set(value.split() if isinstance(value, str) and " " in value else value)
    if op == "contains_any":
        return bool(got & wanted)
    if op == "contains_all":
        return bool(wanted) and wanted <= got
    return False


def role_matches(role: Role, claims: Mapping[str, Any]) -> bool:
    mapping = role.oidc_mapping
    if not isinstance(mapping, Mapping):
        return False
    rules = mapping.get("claims")
    if not isinstance(rules, list) or not rules:
        return False
    held = (_rule_holds(claims, rule) for rule in rules)
    return all(held) if mapping.get("match", "any") == "all" else any(held)


def matching_roles(roles: Iterable[Role], claims: Mapping[str, Any]) -> tuple[Role, ...]:
    """The roles (in the given order) whose mapping the claims satisfy."""
    return tuple(role for role in roles if role_matches(role, claims))
