"""The deployment files agree with the code: services, ports, health checks, settings."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"

INFRA_PORTS = {"postgres": 5432, "nats": 4222, "redis": 6379, "kafka": 9092}
PLANE_PORTS = {
    "admin": 8080,
    "proxy": 8081,
    "mcp": 8082,
    "telemetry": 8083,
    "policy-cache": 8084,
}

# Modules that may hold settings classes; those not installed (yet) are skipped.
SETTINGS_MODULES = [
    "trustgate_core.settings",
    "trustgate_admin.settings",
    "trustgate_proxy.settings",
    "trustgate_mcp.settings",
    "trustgate_telemetry.settings",
    "trustgate_policy_cache.settings",
]

# Variables the compose file sets for planes that are not written yet (none today).
# Remove a name here once a settings class reads it.
PENDING_SETTINGS: set[str] = set()


def _aliases(field: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(field.alias, str):
        names.add(field.alias)
    validation = field.validation_alias
    if isinstance(validation, str):
        names.add(validation)
    elif validation is not None:
        for choice in getattr(validation, "choices", []):
            if isinstance(choice, str):
                names.add(choice)
    return {name.upper() for name in names}


def setting_names() -> set[str]:
    """Every environment name a TrustGate settings class reads (aliases, else field names)."""
    names: set[str] = set()
    for module_name in SETTINGS_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, BaseSettings) or cls is BaseSettings:
                continue
            for field_name, field in cls.model_fields.items():
                names |= _aliases(field) or {field_name.upper()}
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _published_ports(service: dict[str, Any]) -> set[int]:
    published: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published.add(int(entry["published"]))
        else:
            parts = str(entry).split("/")[0].split(":")
            published.add(int(parts[-2]) if len(parts) >= 2 else int(parts[-1]))
    return published


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_has_the_infrastructure_and_every_plane(compose: dict[str, Any]) -> None:
    assert set(INFRA_PORTS) | set(PLANE_PORTS) <= set(compose["services"])


@pytest.mark.parametrize("name,port", [*INFRA_PORTS.items(), *PLANE_PORTS.items()])
def test_compose_publishes_each_service_on_its_standard_port(
    compose: dict[str, Any], name: str, port: int
) -> None:
    assert port in _published_ports(compose["services"][name])


@pytest.mark.parametrize("name", [*INFRA_PORTS, *PLANE_PORTS])
def test_compose_services_have_health_checks(compose: dict[str, Any], name: str) -> None:
    healthcheck = compose["services"][name].get("healthcheck")
    assert healthcheck and healthcheck.get("test"), f"{name} has no health check"


def test_nats_runs_with_jetstream(compose: dict[str, Any]) -> None:
    command = compose["services"]["nats"].get("command", [])
    assert "-js" in (command if isinstance(command, list) else command.split())


@pytest.mark.parametrize("plane", list(PLANE_PORTS))
def test_planes_are_built_from_the_one_dockerfile_and_run_their_command(
    compose: dict[str, Any], plane: str
) -> None:
    service = compose["services"][plane]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert service["command"] == [plane]
    assert service["image"] == compose["services"]["proxy"]["image"]


@pytest.mark.parametrize("plane", list(PLANE_PORTS))
def test_plane_health_checks_probe_their_own_port(compose: dict[str, Any], plane: str) -> None:
    test = " ".join(compose["services"][plane]["healthcheck"]["test"])
    assert f":{PLANE_PORTS[plane]}/healthz" in test


def test_planes_get_the_settings_they_need(compose: dict[str, Any]) -> None:
    admin = _environment(compose["services"]["admin"])
    proxy = _environment(compose["services"]["proxy"])
    for name in ("SERVER_SECRET_KEY", "NATS_URL", "GATEWAY_BASE_DOMAIN"):
        assert name in admin and name in proxy
    for name in ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"):
        assert name in admin
    assert "REDIS_HOST" in proxy and "KAFKA_BROKERS" in proxy
    telemetry = _environment(compose["services"]["telemetry"])
    for name in ("NATS_URL", "KAFKA_BROKERS", "TELEMETRY_KAFKA_TOPIC"):
        assert name in telemetry
    mcp = _environment(compose["services"]["mcp"])
    for name in ("SERVER_SECRET_KEY", "NATS_URL", "MCP_BASE_DOMAIN"):
        assert name in mcp
    # the admin shows hosts.mcp from the same domain the plane discovers gateways by
    assert admin["MCP_BASE_DOMAIN"] == mcp["MCP_BASE_DOMAIN"]
    assert "REDIS_HOST" in mcp or "REDIS_URL" in mcp, "MCP replicas would not share limits"
    cache = _environment(compose["services"]["policy-cache"])
    assert "NATS_URL" in cache, "the proxy's lookups would never reach it"
    assert "REDIS_HOST" in cache, "each replica would keep its own entries"


def test_the_policy_cache_service_matches_its_settings(compose: dict[str, Any]) -> None:
    """One port, ``PolicyCacheSettings``' default, published and probed as is; it starts
    after the bus it answers on and the store it keeps entries in, not after the admin
    (it reads no configuration)."""
    from trustgate_policy_cache.settings import PolicyCacheSettings

    assert PolicyCacheSettings.model_fields["port"].default == PLANE_PORTS["policy-cache"]
    assert "metrics_port" not in PolicyCacheSettings.model_fields
    assert _alias(PolicyCacheSettings, "port") == "SERVER_POLICY_CACHE_PORT"
    assert _alias(PolicyCacheSettings, "host") in HOSTS
    service = compose["services"]["policy-cache"]
    assert _alias(PolicyCacheSettings, "port") not in _environment(service)
    assert service["depends_on"] == {
        "nats": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def _alias(settings: type[BaseSettings], field: str) -> str:
    alias = settings.model_fields[field].alias
    assert alias, f"{settings.__name__}.{field} has no environment name"
    return alias


def test_the_mcp_service_matches_the_planes_settings(compose: dict[str, Any]) -> None:
    """The port compose publishes and probes is ``McpSettings``' default, and the names it
    sets are the ones ``McpSettings`` reads (``SERVER_MCP_*``)."""
    from trustgate_mcp.settings import McpSettings

    fields = McpSettings.model_fields
    assert fields["port"].default == PLANE_PORTS["mcp"]
    assert _alias(McpSettings, "port") == "SERVER_MCP_PORT"
    assert _alias(McpSettings, "metrics_port") == "SERVER_MCP_METRICS_PORT"
    service = compose["services"]["mcp"]
    env = _environment(service)
    # a port compose overrode would no longer be the one published and probed
    assert _alias(McpSettings, "port") not in env
    assert _alias(McpSettings, "host") in HOSTS  # 0.0.0.0 in the image and compose


def test_the_mcp_plane_starts_after_what_it_reads_like_the_proxy(compose: dict[str, Any]) -> None:
    """Its config replica needs NATS and the admin's streams; its counters need Redis."""
    mcp = compose["services"]["mcp"]["depends_on"]
    proxy = compose["services"]["proxy"]["depends_on"]
    assert mcp == proxy
    assert all(dep["condition"] == "service_healthy" for dep in mcp.values())


# The standard OpenTelemetry variables are read by the OTel code, not a settings class.
OTEL_READERS = [
    REPO / "libs" / "trustgate-core" / "src" / "trustgate_core" / "observability" / "tracing.py",
    REPO / "libs" / "trustgate-core" / "src" / "trustgate_core" / "telemetry" / "settings.py",
]


def otel_names() -> set[str]:
    """The ``OTEL_*`` names the tracing setup and the OTLP defaults read."""
    return {
        name
        for path in OTEL_READERS
        for name in re.findall(r"\bOTEL_[A-Z_]*[A-Z]", path.read_text(encoding="utf-8"))
    }


def test_every_variable_the_planes_set_is_a_real_setting(compose: dict[str, Any]) -> None:
    known = setting_names() | PENDING_SETTINGS | otel_names()
    unknown = {
        f"{plane}:{name}"
        for plane in PLANE_PORTS
        for name in _environment(compose["services"][plane])
        if name.upper() not in known
    }
    assert not unknown, f"compose sets variables no settings class reads: {sorted(unknown)}"


def test_setting_names_include_the_core_and_database_aliases() -> None:
    names = setting_names()
    assert {"SERVER_SECRET_KEY", "NATS_URL", "DB_HOST", "DATABASE_URL"} <= names


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_one_image_whose_argument_picks_the_plane() -> None:
    instructions = _dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms and froms[0].startswith("python:3.11-slim")
    entrypoint = [json.loads(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    cmd = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert entrypoint[-1] == ["trustgate"]
    assert cmd[-1] == ["proxy"]


def test_dockerfile_installs_every_package_and_runs_unprivileged() -> None:
    instructions = _dockerfile_instructions()
    copied = " ".join(rest for keyword, rest in instructions if keyword == "COPY")
    for part in ("libs", "services", "src", "pyproject.toml"):
        assert re.search(rf"\b{re.escape(part)}\b", copied), f"{part} is not copied"
    run = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip install" in run
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_the_image_bakes_in_the_commit_and_build_date_that_version_reports(
    compose: dict[str, Any],
) -> None:
    instructions = _dockerfile_instructions()
    args = " ".join(rest for keyword, rest in instructions if keyword == "ARG")
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    build_args = compose["x-trustgate-image"]["build"]["args"]
    for name in ("TRUSTGATE_COMMIT", "TRUSTGATE_BUILD_DATE"):
        assert name in args and f"{name}=${{{name}}}" in env
        assert name in build_args


HOSTS = (
    "SERVER_HOST",
    "SERVER_PROXY_HOST",
    "SERVER_MCP_HOST",
    "SERVER_TELEMETRY_HOST",
    "SERVER_POLICY_CACHE_HOST",
    "SERVER_METRICS_HOST",
)


def test_planes_listen_on_loopback_unless_a_container_says_all_interfaces(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a container nothing is reachable from the network by default (issue 10);
    the image and compose, whose ports are reached from outside, listen on 0.0.0.0
    explicitly."""
    from trustgate_admin.settings import AdminSettings
    from trustgate_mcp.settings import McpSettings
    from trustgate_policy_cache.settings import PolicyCacheSettings
    from trustgate_proxy.settings import ProxySettings
    from trustgate_telemetry.settings import TelemetrySettings

    for name in HOSTS:
        monkeypatch.delenv(name, raising=False)
    admin, proxy, mcp = AdminSettings(), ProxySettings(), McpSettings()
    telemetry, cache = TelemetrySettings(), PolicyCacheSettings()
    assert {admin.host, proxy.host, mcp.host, telemetry.host, cache.host} == {"127.0.0.1"}
    assert {admin.metrics_host, proxy.metrics_host, mcp.metrics_host} == {"127.0.0.1"}

    env = " ".join(rest for keyword, rest in _dockerfile_instructions() if keyword == "ENV")
    for name in HOSTS:
        assert f"{name}=0.0.0.0" in env
    shared = compose["x-trustgate-env"]
    assert all(shared.get(name) == "0.0.0.0" for name in HOSTS), shared


# --- the observability stack (issue 16 §3) ----------------------------------------------

OBSERVABILITY = ("collector", "prometheus", "grafana")


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts of repository paths: container path -> repository path."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target = str(entry).split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source[2:]
    return mounts


def test_compose_has_the_collector_prometheus_and_grafana(compose: dict[str, Any]) -> None:
    assert set(OBSERVABILITY) <= set(compose["services"])


def test_every_image_is_pinned_by_tag(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" in service:
            continue  # the TrustGate image, built from this checkout
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag and tag not in ("", "latest"), f"{name}: {image}"


def test_depends_on_waits_for_health_wherever_a_health_check_exists(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = (
                "service_healthy" if "healthcheck" in services[dependency] else "service_started"
            )
            assert spec["condition"] == expected, f"{name} -> {dependency}"


def test_no_service_waits_on_itself_through_its_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]

    def reaches(start: str, seen: frozenset[str]) -> None:
        for dependency in services[start].get("depends_on", {}):
            assert dependency not in seen, f"dependency cycle through {dependency}"
            reaches(dependency, seen | {dependency})

    for name in services:
        reaches(name, frozenset({name}))


def test_health_checks_name_a_command(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "healthcheck" in service:
            test = service["healthcheck"]["test"]
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_every_mounted_file_is_in_the_repository(compose: dict[str, Any]) -> None:
    mounted = [
        source for service in compose["services"].values() for source in _mounts(service).values()
    ]
    assert mounted
    for source in mounted:
        assert (REPO / source).exists(), source


def _ops_ports() -> dict[str, int]:
    """Where each plane serves /metrics by default, from its settings."""
    from trustgate_admin.settings import AdminSettings
    from trustgate_mcp.settings import McpSettings
    from trustgate_policy_cache.settings import PolicyCacheSettings
    from trustgate_proxy.settings import ProxySettings
    from trustgate_telemetry.settings import TelemetrySettings

    return {
        "admin": AdminSettings.model_fields["metrics_port"].default,
        "proxy": ProxySettings.model_fields["metrics_port"].default,
        "mcp": McpSettings.model_fields["metrics_port"].default,
        # one port each: health + metrics
        "telemetry": TelemetrySettings.model_fields["port"].default,
        "policy-cache": PolicyCacheSettings.model_fields["port"].default,
    }


def test_prometheus_scrapes_exactly_the_planes_operations_ports(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = _mounts(prometheus)
    config = _yaml(REPO / mounts["/etc/prometheus/prometheus.yml"])
    targets = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert host not in targets, f"{host} scraped twice"
                targets[host] = int(port)
    assert targets == _ops_ports()
    assert set(targets) == set(PLANE_PORTS)


@pytest.mark.parametrize("plane", list(PLANE_PORTS))
def test_each_plane_serves_metrics_where_prometheus_reaches_it(
    compose: dict[str, Any], plane: str
) -> None:
    """On every interface, and on the default port (an override would leave Prometheus
    scraping the wrong one)."""
    env = _environment(compose["services"][plane])
    host = {
        "telemetry": "SERVER_TELEMETRY_HOST",
        "policy-cache": "SERVER_POLICY_CACHE_HOST",
    }.get(plane, "SERVER_METRICS_HOST")
    assert env.get(host) == "0.0.0.0"
    overrides = {"SERVER_ADMIN_METRICS_PORT", "SERVER_PROXY_METRICS_PORT"}
    overrides |= {"SERVER_MCP_METRICS_PORT", "SERVER_TELEMETRY_PORT", "TELEMETRY_PORT"}
    overrides |= {"SERVER_POLICY_CACHE_PORT"}
    assert not overrides & set(env)


@pytest.fixture(scope="module")
def collector(compose: dict[str, Any]) -> dict[str, Any]:
    mounts = _mounts(compose["services"]["collector"])
    command = " ".join(compose["services"]["collector"]["command"])
    path = re.search(r"--config=(\S+)", command)
    assert path, command
    return _yaml(REPO / mounts[path.group(1)])


def test_the_collector_receives_otlp_traces_and_logs(collector: dict[str, Any]) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    # on every interface: its default (localhost) is out of the other containers' reach
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    pipelines = collector["service"]["pipelines"]
    for signal in ("traces", "logs"):
        pipeline = pipelines[signal]
        assert "otlp" in pipeline["receivers"]
        assert pipeline["exporters"]
        assert set(pipeline["exporters"]) <= set(collector["exporters"])
        assert set(pipeline.get("processors", [])) <= set(collector.get("processors", {}))


def _as_compose_sets_it(env: dict[str, str]) -> dict[str, str]:
    """``env`` with each ``${NAME:-default}`` replaced as compose does when NAME is unset."""
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v) for k, v in env.items()}


def _planes_that_trace() -> set[str]:
    return {
        plane
        for plane in PLANE_PORTS
        if any(
            "setup_tracing(" in path.read_text(encoding="utf-8")
            for path in (REPO / "services" / plane / "src").rglob("*.py")
        )
    }


def test_the_planes_that_trace_send_to_the_collector(compose: dict[str, Any]) -> None:
    """Spans go to the collector's gRPC port in plaintext, and telemetry's default for the
    gateways' OTLP logs is the same; a gateway's own endpoint still gets its protocol from
    its own URL (compose forces none)."""
    from trustgate_core.observability.tracing import trace_config_from_env
    from trustgate_core.telemetry.settings import (
        ExporterSpec,
        OtlpDefaults,
        OtlpSettings,
        resolve_otlp,
    )

    tracing = _planes_that_trace()
    assert {"proxy", "telemetry"} <= tracing
    assert 4317 in _published_ports(compose["services"]["collector"])
    for plane in tracing:
        env = _as_compose_sets_it(_environment(compose["services"][plane]))
        traces = trace_config_from_env(plane, env)
        assert traces is not None, plane
        assert (traces.endpoint, traces.protocol) == ("http://collector:4317", "grpc")
    telemetry = _as_compose_sets_it(_environment(compose["services"]["telemetry"]))
    defaults = OtlpDefaults.from_env(telemetry)
    logs = resolve_otlp(ExporterSpec(type="otlp", name="o"), defaults)
    assert logs is not None
    assert (logs.endpoint, logs.protocol, logs.insecure) == ("http://collector:4317", "grpc", True)
    own = OtlpSettings(endpoint="https://otlp.example.com/v1/logs")
    vendor = resolve_otlp(ExporterSpec(type="otlp", name="v", otlp=own), defaults)
    assert vendor is not None and vendor.protocol == "http/protobuf"


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    mounts = _mounts(grafana)
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    (source,) = _yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["services"]["prometheus"]["ports"]
    (provider,) = _yaml(provisioning / "dashboards" / "trustgate.yaml")["providers"]
    dashboards = provider["options"]["path"]
    assert (REPO / mounts[dashboards] / "trustgate.json").is_file()
    home = _environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards}/trustgate.json"
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def _readme_section(title: str) -> str:
    text = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    section = text[text.index(f"## {title}\n") + len(title) + 4 :]
    return section[: section.find("\n## ")]


def test_the_readme_names_every_service_compose_runs(compose: dict[str, Any]) -> None:
    """deploy/README.md's compose section lists what `docker compose up` starts."""
    section = _readme_section("The full stack on one host").lower()
    spelled = {"nats": "nats", "collector": "opentelemetry collector"}
    missing = {
        name
        for name in compose["services"]
        if spelled.get(name, name.replace("-", "")) not in section.replace("-", "")
    }
    assert not missing, f"deploy/README.md does not mention {sorted(missing)}"
    for plane, port in PLANE_PORTS.items():
        assert str(port) in section, plane


def test_the_readme_names_every_bind_and_port_compose_sets(compose: dict[str, Any]) -> None:
    """Each plane's host setting (SERVER_*_HOST) the compose file sets, and each plane's
    operations port, is in deploy/README.md's binds section."""
    section = _readme_section("Binds and operations ports")
    env = compose["x-trustgate-env"]
    hosts = {name for name in env if name.startswith("SERVER_") and name.endswith("_HOST")}
    assert "SERVER_POLICY_CACHE_HOST" in hosts
    missing = {name for name in hosts if f"`{name}`" not in section}
    assert not missing, f"deploy/README.md's binds omit {sorted(missing)}"
    # the operations ports: the admin's, proxy's and MCP plane's own, the others' one port
    for port in (9080, 9081, 9082, PLANE_PORTS["telemetry"], PLANE_PORTS["policy-cache"]):
        assert f"({port}" in section, port
