"""The container image, checked without a Docker daemon: deploy/Dockerfile and .dockerignore.

Two stages (wheels built, then installed into a clean slim base), non-root by number, the
build arguments reaching what ``GET /__/version`` reads, every plane's port exposed as its
settings default it, the test kit never shipped, no local state in the build context.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
TESTKIT = "libs/trustgate-testkit"
COMPILERS = ("gcc", "g++", "cc ", "build-essential", "clang", "make ")


@dataclass
class Stage:
    """One ``FROM`` and the instructions under it, continuation lines joined."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def rests(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def stages() -> list[Stage]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            found.append(Stage(base.strip(), name.strip()))
        else:
            assert found, f"{keyword} before the first FROM"
            found[-1].instructions.append((keyword, rest))
    return found


def shipped_packages() -> set[str]:
    """Every local package directory that a deployment ships: all but the test kit."""
    dirs = {
        str(path.parent.relative_to(REPO))
        for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml")
        for path in REPO.glob(pattern)
    }
    return dirs - {TESTKIT}


def project(directory: Path) -> dict[str, object]:
    data = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))
    table = data["project"]
    assert isinstance(table, dict)
    return table


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def test_two_stages_build_wheels_then_install_only_them() -> None:
    build, runtime = stages()
    assert (build.name, runtime.name) == ("build", "runtime")
    assert build.base == runtime.base == "python:3.11-slim"
    assert any("pip wheel --wheel-dir /wheels" in run for run in build.rests("RUN"))
    # the runtime gets the wheels from the build stage and nothing from the build context
    assert not runtime.rests("COPY") and not runtime.rests("ADD")
    (install,) = [run for run in runtime.rests("RUN") if "pip install" in run]
    assert "from=build" in install and "source=/wheels" in install
    assert "--no-index --find-links /wheels trustgate" in install


def test_the_runtime_stage_has_no_compiler() -> None:
    runtime = stages()[-1]
    runs = " ".join(runtime.rests("RUN")) + " "
    assert "apt-get" not in runs and "apk " not in runs
    assert not [word for word in COMPILERS if word in runs]


def test_the_build_stage_builds_every_shipped_package_and_not_the_test_kit() -> None:
    """Runs the build stage's own loop in the repository, with ``pip`` only echoing, so
    the packages it would build are the ones a new plane's directory adds by itself."""
    (wheel_run,) = [run for run in stages()[0].rests("RUN") if "pip wheel" in run]
    shell = f'pip() {{ echo "PIP $*"; }}\n{wheel_run}'
    out = subprocess.run(
        ["sh", "-c", shell], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
    )
    (line,) = [line for line in out.stdout.splitlines() if line.startswith("PIP ")]
    targets = line.split()[4:]  # PIP wheel --wheel-dir /wheels ...
    assert targets[-1] == "."  # the `trustgate` command itself
    assert {target.removeprefix("./") for target in targets[:-1]} == shipped_packages()


def test_installing_trustgate_installs_every_plane_and_never_the_test_kit() -> None:
    """The runtime installs the ``trustgate`` wheel by name: what it brings in is its
    dependencies, so every shipped package must be one of them (directly or through
    another), and none may depend on the test kit."""
    names = {
        str(project(REPO / directory)["name"]): REPO / directory for directory in shipped_packages()
    }
    reached: set[str] = set()
    todo = ["trustgate"]
    while todo:
        name = todo.pop()
        directory = REPO if name == "trustgate" else names.get(name)
        if directory is None or name in reached:
            continue
        reached.add(name)
        dependencies = project(directory).get("dependencies", [])
        assert isinstance(dependencies, list)
        requirements = {requirement_name(str(dep)) for dep in dependencies}
        assert "trustgate-testkit" not in requirements, f"{name} depends on the test kit"
        todo.extend(requirements)
    assert set(names) <= reached, f"not installed: {sorted(set(names) - reached)}"


def test_the_image_runs_as_uid_10001_by_number() -> None:
    runtime = stages()[-1]
    assert runtime.rests("USER")[-1] == "10001:10001"
    runs = " ".join(runtime.rests("RUN"))
    assert "useradd --system --uid 10001 --gid 10001" in runs
    assert "groupadd --system --gid 10001" in runs


@pytest.mark.parametrize("name", ["TRUSTGATE_COMMIT", "TRUSTGATE_BUILD_DATE"])
def test_build_arguments_reach_the_environment_version_reads(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = stages()[-1]
    assert any(arg.startswith(f"{name}=") for arg in runtime.rests("ARG"))
    assert any(f"{name}=${{{name}}}" in env for env in runtime.rests("ENV"))

    from trustgate_core import buildinfo

    monkeypatch.setenv("TRUSTGATE_COMMIT", "c" * 40)
    monkeypatch.setenv("TRUSTGATE_BUILD_DATE", "2026-12-07T00:00:00Z")
    buildinfo.build_info.cache_clear()
    try:
        info = buildinfo.build_info()
    finally:
        buildinfo.build_info.cache_clear()
    assert info["commit"] == "c" * 40
    assert info["build_date"] == "2026-12-07T00:00:00Z"


def test_the_version_argument_must_match_the_wheels_version_reports() -> None:
    """``/__/version`` reports the installed ``trustgate`` distribution's version, which is
    the root pyproject's: the build refuses a TRUSTGATE_VERSION that is not that wheel's."""
    build, runtime = stages()
    assert 'TRUSTGATE_VERSION=""' in build.rests("ARG")
    (check,) = [run for run in build.rests("RUN") if "TRUSTGATE_VERSION" in run]
    assert "/wheels/trustgate-${TRUSTGATE_VERSION}-py3-none-any.whl" in check
    assert "exit 1" in check
    labels = " ".join(runtime.rests("LABEL"))
    assert 'org.opencontainers.image.version="${TRUSTGATE_VERSION}"' in labels

    from importlib import metadata

    assert metadata.version("trustgate") == project(REPO)["version"]


def test_expose_is_every_planes_ports_as_their_settings_default_them() -> None:
    from trustgate_admin.settings import AdminSettings
    from trustgate_mcp.settings import McpSettings
    from trustgate_policy_cache.settings import PolicyCacheSettings
    from trustgate_proxy.settings import ProxySettings
    from trustgate_telemetry.settings import TelemetrySettings

    defaults = set()
    planes = (AdminSettings, ProxySettings, McpSettings, TelemetrySettings, PolicyCacheSettings)
    for settings in planes:
        for name in ("port", "metrics_port"):
            if name in settings.model_fields:
                defaults.add(settings.model_fields[name].default)
    exposed = {int(port) for rest in stages()[-1].rests("EXPOSE") for port in rest.split()}
    assert exposed == defaults == {8080, 8081, 8082, 8083, 8084, 9080, 9081, 9082}


def test_the_default_command_and_entrypoint_pick_a_plane() -> None:
    runtime = stages()[-1]
    assert runtime.rests("ENTRYPOINT") == ['["trustgate"]']
    assert runtime.rests("CMD") == ['["proxy"]']


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore's rules as (excludes, regex), in order; the last match wins."""
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part)
            )
        rules.append((not negated, re.compile(regex)))
    return rules


def ignored(path: str) -> bool:
    """Whether the build context leaves ``path`` out: a rule on a directory covers all in it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for excludes, regex in _ignore_rules():
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            verdict = excludes
    return verdict


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".trustgate/nats/jetstream",
        ".env",
        "services/proxy/.venv/lib/site.py",
        "libs/trustgate-core/src/trustgate_core/__pycache__/buildinfo.cpython-311.pyc",
    ],
)
def test_the_build_context_leaves_out_local_state_and_secrets(path: str) -> None:
    assert ignored(path)


def test_the_build_context_keeps_everything_the_image_copies() -> None:
    copied = [
        source
        for stage in stages()
        for rest in stage.rests("COPY")
        if not rest.startswith("--from")
        for source in rest.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert not ignored(source), f"COPY {source} but .dockerignore leaves it out"
    for directory in shipped_packages():
        assert not ignored(f"{directory}/pyproject.toml")
        assert not ignored(f"{directory}/src")
