"""Every error kind the proxy records is one the request-event contract documents."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import trustgate_core.errors as errors
import trustgate_proxy
from trustgate_core.events.requests import ERROR_KINDS

SOURCE = Path(trustgate_proxy.__file__).parent


def _python_files() -> list[Path]:
    return [p for p in SOURCE.rglob("*.py") if "testing" not in p.parts]


def test_every_error_kind_the_proxy_sets_is_documented_in_the_contract() -> None:
    kinds: set[str] = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Attribute) and t.attr == "error_kind" for t in targets):
                    value = node.value
                    for sub in ast.walk(value) if value is not None else ():
                        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                            kinds.add(sub.value)
    assert kinds, "found no error_kind assignment: the scan is broken"
    assert kinds <= ERROR_KINDS, sorted(kinds - ERROR_KINDS)


def test_every_core_error_the_proxy_raises_has_a_documented_kind() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in _python_files())
    codes = {
        cls.code
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.TrustGateError) and cls is not errors.TrustGateError
        if f"{name}(" in text
    }
    assert codes, "found no core error raised by the proxy: the scan is broken"
    assert codes <= ERROR_KINDS, sorted(codes - ERROR_KINDS)
