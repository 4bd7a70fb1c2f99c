"""The files under deploy/: they parse, the manifests pass the Kubernetes schema, and the
kubetrail config they embed is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubetrail.config import parse_config

DEPLOY = Path(__file__).parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_manifests_parse_and_have_the_expected_kinds() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for p in MANIFESTS for d in documents(p)}
    assert {
        ("Namespace", "kubetrail"),
        ("StatefulSet", "kubetrail"),
        ("Service", "kubetrail"),
        ("Secret", "kubetrail-credentials"),
        ("ConfigMap", "kubetrail-config"),
        ("DaemonSet", "kubetrail-collect"),
    } <= kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_match_the_kubernetes_schema(path: Path) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    for doc in documents(path):
        kv.validate(doc, "1.31", strict=True)


def test_embedded_config_is_valid() -> None:
    (config_map,) = [
        d for d in documents(DEPLOY / "kubernetes" / "server.yaml") if d["kind"] == "ConfigMap"
    ]
    config = parse_config(yaml.safe_load(config_map["data"]["kubetrail.yaml"]))
    assert config.server.listen == "0.0.0.0:8443"
    statefulset = next(
        d for d in documents(DEPLOY / "kubernetes" / "server.yaml") if d["kind"] == "StatefulSet"
    )
    assert statefulset["spec"]["replicas"] == 1  # the embedded store has one writer


def test_collector_runs_on_control_plane_nodes_with_the_log_mounted() -> None:
    (ds,) = [
        d for d in documents(DEPLOY / "kubernetes" / "collector.yaml") if d["kind"] == "DaemonSet"
    ]
    spec = ds["spec"]["template"]["spec"]
    assert "node-role.kubernetes.io/control-plane" in spec["nodeSelector"]
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/var/log/kubernetes/audit"]["readOnly"] is True
    assert "--file=/var/log/kubernetes/audit/audit.log" in spec["containers"][0]["args"]


def test_collector_mounts_the_container_logs_at_their_host_paths() -> None:
    # /var/log/containers entries are symlinks to absolute paths under /var/log/pods.
    (ds,) = [
        d for d in documents(DEPLOY / "kubernetes" / "collector.yaml") if d["kind"] == "DaemonSet"
    ]
    spec = ds["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in ("/var/log/containers", "/var/log/pods"):
        (name,) = [n for n, m in mounts.items() if m["mountPath"] == path]
        assert mounts[name]["readOnly"] is True
        assert volumes[name]["hostPath"]["path"] == path


def test_webhook_kubeconfig_points_at_the_ingest_path() -> None:
    (config,) = documents(DEPLOY / "apiserver" / "audit-webhook-kubeconfig.yaml")
    assert config["kind"] == "Config"
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    assert cluster["cluster"]["server"].endswith("/ingest/v1/events")
    assert any(u["name"] == context["context"]["user"] for u in config["users"])


def test_kind_config_sets_the_audit_flags() -> None:
    (kind,) = documents(DEPLOY / "kind" / "kind-config.yaml")
    patch = yaml.safe_load(kind["nodes"][0]["kubeadmConfigPatches"][0])
    args = patch["apiServer"]["extraArgs"]
    assert {"audit-policy-file", "audit-webhook-config-file", "audit-log-path"} <= set(args)
    (policy,) = documents(DEPLOY / "kind" / "audit-policy.yaml")
    assert policy["kind"] == "Policy"
