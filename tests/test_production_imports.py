"""A production install is clean: the shipped distributions (trustgate-core, the services and
the root ``trustgate``) neither need nor declare a test-only package, and none carries test
helpers; those live in the dev-only ``trustgate-testkit`` (libs/trustgate-testkit), which the
container image leaves out."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
TESTKIT = REPO / "libs" / "trustgate-testkit"

# Import names a production install does not have.
TEST_ONLY_MODULES = (
    "pytest",
    "_pytest",
    "pytest_asyncio",
    "pytest_timeout",
    "openai",
    "anthropic",
    "testcontainers",
    "trustgate_testkit",
    "jsonschema",
)
# Distribution names no shipped pyproject may depend on.
TEST_ONLY_DISTRIBUTIONS = frozenset(
    canonicalize_name(name)
    for name in (
        "pytest",
        "pytest-asyncio",
        "pytest-timeout",
        "openai",
        "anthropic",
        "testcontainers",
        "trustgate-testkit",
        "jsonschema",
    )
)
SHIPPED_PACKAGES = (
    "trustgate_core",
    "trustgate_admin",
    "trustgate_proxy",
    "trustgate_telemetry",
    "trustgate",
)
MIGRATION_VERSIONS = REPO / "services/admin/src/trustgate_admin/adapters/db/migrations/versions"

# Run in a fresh interpreter: a meta-path finder makes the test-only packages unimportable
# (as in an install without them), then every module of every shipped package is imported.
# Alembic's version scripts are loaded by file path, as alembic loads them (they are not in
# a package); its env.py is not: it runs migrations on import and needs alembic's context.
IMPORT_EVERYTHING = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import importlib.util
    import json
    import pkgutil
    import sys
    import traceback
    from pathlib import Path

    blocked, packages, versions_dir = json.loads(sys.argv[1])

    class TestOnly(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, TestOnly())
    imported, failed = [], {}

    def attempt(name, load):
        try:
            load()
        except BaseException:
            failed[name] = traceback.format_exc()
        else:
            imported.append(name)

    for package in packages:
        attempt(package, lambda: importlib.import_module(package))
        if package not in sys.modules:
            continue
        walked = pkgutil.walk_packages(
            sys.modules[package].__path__,
            prefix=package + ".",
            onerror=lambda name: failed.setdefault(name, traceback.format_exc()),
        )
        for info in walked:
            attempt(info.name, lambda: importlib.import_module(info.name))

    for script in sorted(Path(versions_dir).glob("*.py")):
        def load(script=script):
            spec = importlib.util.spec_from_file_location(f"_version_{script.stem}", script)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        attempt(f"migrations/versions/{script.name}", load)

    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in blocked)
    print(json.dumps({"imported": imported, "failed": failed, "loaded": loaded}))
    """
)


@pytest.mark.slow
def test_every_shipped_module_imports_without_the_test_only_packages() -> None:
    arguments = json.dumps([TEST_ONLY_MODULES, SHIPPED_PACKAGES, str(MIGRATION_VERSIONS)])
    result = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_EVERYTHING, arguments],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    failures = "\n".join(f"--- {name}\n{tb}" for name, tb in report["failed"].items())
    assert not report["failed"], f"modules that do not import in production:\n{failures}"
    assert report["loaded"] == []
    imported = set(report["imported"])
    assert set(SHIPPED_PACKAGES) <= imported
    for module in ("trustgate_proxy.main", "trustgate_admin.main", "trustgate.cli"):
        assert module in imported
    assert any(name.startswith("migrations/versions/") for name in imported)


def _shipped_pyprojects() -> list[Path]:
    found = [REPO / "pyproject.toml"]
    found += sorted((REPO / "libs").glob("*/pyproject.toml"))
    found += sorted((REPO / "services").glob("*/pyproject.toml"))
    return [path for path in found if path.parent != TESTKIT]


def test_no_shipped_distribution_depends_on_a_test_only_package() -> None:
    pyprojects = _shipped_pyprojects()
    names = {tomllib.loads(p.read_text(encoding="utf-8"))["project"]["name"] for p in pyprojects}
    assert {"trustgate", "trustgate-core", "trustgate-admin", "trustgate-proxy"} <= names
    assert "trustgate-telemetry" in names
    offending = []
    for path in pyprojects:
        project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
        groups = {"dependencies": project.get("dependencies", [])}
        for extra, requirements in project.get("optional-dependencies", {}).items():
            if not (path == REPO / "pyproject.toml" and extra == "dev"):
                groups[f"[{extra}]"] = requirements
        for group, requirements in groups.items():
            for text in requirements:
                name = canonicalize_name(Requirement(text).name)
                if name in TEST_ONLY_DISTRIBUTIONS:
                    offending.append(f"{path.relative_to(REPO)} {group}: {text}")
    assert offending == []


def test_the_testkit_is_only_a_dev_dependency() -> None:
    root = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dev = {canonicalize_name(Requirement(r).name) for r in root["optional-dependencies"]["dev"]}
    assert "trustgate-testkit" in dev
    testkit = tomllib.loads((TESTKIT / "pyproject.toml").read_text(encoding="utf-8"))
    assert testkit["project"]["name"] == "trustgate-testkit"


def test_no_shipped_package_has_a_testing_module() -> None:
    sources = [REPO / "src"] + [p.parent / "src" for p in _shipped_pyprojects()[1:]]
    found = [
        str(path.relative_to(REPO))
        for source in sources
        for path in source.rglob("testing*")
        if path.name in ("testing", "testing.py")
    ]
    assert found == []
