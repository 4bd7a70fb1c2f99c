"""For every stateless rule of the built-in pack: an event that fires it and a close non-match.

Events are real where the published test data has one (Falco's traces, CrowdSec's hub tests,
Panther's rule tests, audit2rbac's demo: see tests/data/README.md); the others are built by
:func:`event`, shaped as kube-apiserver writes them (v1, ResponseComplete).
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlencode

from testdata import EVENTS, read_json_lines

Event = dict[str, Any]


def real(file: str, **where: Any) -> Event:
    """The first event of a tests/data/events file whose fields equal ``where``.

    Keys are dotted paths (``objectRef.resource``); ``user`` is ``user.username``.
    """
    for e in read_json_lines(EVENTS / file):
        for item in e.get("items", [e]):
            if all(_get(item, k) == v for k, v in where.items()):
                return copy.deepcopy(item)
    raise LookupError(f"no event in {file} with {where}")


def _get(doc: Any, path: str) -> Any:
    path = {"user": "user.username"}.get(path, path)
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def event(
    verb: str,
    resource: str | None = None,
    *,
    ns: str | None = "default",
    name: str | None = None,
    sub: str | None = None,
    group: str = "",
    user: str = "alice@example.com",
    groups: tuple[str, ...] = ("system:authenticated",),
    code: int = 200,
    body: Any = None,
    uri: str | None = None,
    query: list[tuple[str, str]] | None = None,
    ip: str = "203.0.113.7",
    ua: str = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
    impersonate: str | None = None,
    time: str = "2024-05-01T12:00:00.000000Z",
) -> Event:
    """An audit.k8s.io/v1 ResponseComplete event of one request."""
    if uri is None:
        prefix = f"/apis/{group}/v1" if group else "/api/v1"
        path = prefix + (f"/namespaces/{ns}" if ns else "") + (f"/{resource}" if resource else "")
        path += f"/{name}" if name else ""
        path += f"/{sub}" if sub else ""
        uri = path + ("?" + urlencode(query) if query else "")
    e: Event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Request" if body is not None else "Metadata",
        "auditID": "",
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb,
        "user": {"username": user, "groups": list(groups)},
        "sourceIPs": [ip],
        "userAgent": ua,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": time,
        "stageTimestamp": time.replace(".000000Z", ".020000Z"),
        "annotations": {"authorization.k8s.io/decision": "allow" if code < 400 else "forbid"},
    }
    if resource:
        ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
        if group:
            ref["apiGroup"] = group
        if ns:
            ref["namespace"] = ns
        if name:
            ref["name"] = name
        if sub:
            ref["subresource"] = sub
        e["objectRef"] = ref
    if body is not None:
        e["requestObject"] = body
    if impersonate:
        e["impersonatedUser"] = {"username": impersonate, "groups": ["system:authenticated"]}
    return e


SA = "system:serviceaccount:shop:web"
ADMIN = ("system:masters", "system:authenticated")


def pod(spec: dict[str, Any], name: str = "x") -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name}, "spec": spec}


def container(**security: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": "nginx:1.27"}
    if security:
        c["securityContext"] = security
    return c


def deployment(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": spec}},
    }


def create_pod(spec: dict[str, Any], **kw: Any) -> Event:
    kw.setdefault("code", 201)
    return event("create", "pods", body=pod(spec), **kw)


def role(kind: str, rules: list[dict[str, Any]], name: str = "ops") -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name},
        "rules": rules,
    }


def binding(role_name: str, kind: str = "ClusterRoleBinding") -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "b"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role_name,
        },
        "subjects": [{"kind": "User", "name": "mallory@example.com"}],
    }


RBAC = "rbac.authorization.k8s.io"
EXEC_QUERY = [
    ("command", "sh"),
    ("command", "-c"),
    ("command", "cat /etc/shadow"),
    ("container", "app"),
    ("stdin", "true"),
    ("tty", "true"),
]

#: rule id -> (fires, close non-match)
CASES: dict[str, tuple[Event, Event]] = {
    "k8s.secret.read_by_human": (
        event("get", "secrets", name="db"),
        event("get", "configmaps", name="db"),
    ),
    "k8s.secret.read_outside_allowlist": (
        event("get", "secrets", name="db", user=SA),
        event("get", "secrets", name="db", user="system:serviceaccount:kube-system:ctrl"),
    ),
    "k8s.secret.named_viewed": (
        event("get", "secrets", name="db-admin"),
        event("get", "secrets", name="db-admin-ro"),
    ),
    "k8s.secret.list_all_namespaces": (
        event("list", "secrets", ns=None, user=SA),
        event("list", "secrets", ns="shop", user=SA),
    ),
    "k8s.secret.modified": (
        real(
            "falco-k8s-audit-traces.jsonl", **{"objectRef.name": "example-secret", "verb": "create"}
        ),
        real("falco-k8s-audit-traces.jsonl", **{"objectRef.name": "default-token-7v4pb"}),
    ),
    "k8s.secret.deleted": (
        real("falco-k8s-audit-traces.jsonl", verb="delete", user="minikube-user"),
        event("delete", "secrets", name="db", code=404),
    ),
    "k8s.auth.sa_denied": (
        real(
            "panther-analysis-k8s-rule-tests.jsonl", **{"responseStatus.code": 403, "verb": "watch"}
        ),
        event("list", "pods", user=SA, code=401),
    ),
    "k8s.auth.anonymous_allowed": (
        real("falco-k8s-audit-traces.jsonl", user="system:anonymous"),
        real("panther-analysis-k8s-rule-tests.jsonl", requestURI="/version"),
    ),
    "k8s.auth.impersonation": (
        real("audit2rbac-demo-v1.jsonl", **{"impersonatedUser.username": "bob"}),
        event("list", "pods", user="system:admin"),
    ),
    "k8s.auth.system_masters_used": (
        event("get", "pods", groups=ADMIN),
        event("get", "pods", groups=ADMIN, user="system:serviceaccount:kube-system:x"),
    ),
    "k8s.auth.self_subject_review": (
        event(
            "create",
            "selfsubjectrulesreviews",
            ns=None,
            group="authorization.k8s.io",
            user=SA,
            code=201,
        ),
        event("create", "selfsubjectrulesreviews", ns=None, group="authorization.k8s.io", code=201),
    ),
    "k8s.pod.exec": (
        real("crowdsec-hub-k8s-audit-tests.jsonl", **{"objectRef.subresource": "exec"}),
        real("panther-analysis-k8s-rule-tests.jsonl", **{"objectRef.subresource": "log"}),
    ),
    "k8s.pod.attach": (
        event("create", "pods", name="web", sub="attach", code=101),
        event("create", "pods", name="web", sub="attach", code=403),
    ),
    "k8s.pod.portforward": (
        event("create", "pods", name="web", sub="portforward", code=101),
        event("get", "pods", name="web", sub="log"),
    ),
    "k8s.pod.ephemeral_container": (
        event(
            "patch",
            "pods",
            name="web",
            sub="ephemeralcontainers",
            body={"spec": {"ephemeralContainers": [{"name": "debugger", "image": "busybox"}]}},
        ),
        event("get", "pods", name="web", sub="ephemeralcontainers"),
    ),
    "k8s.pod.privileged": (
        real(
            "crowdsec-hub-k8s-audit-tests.jsonl", verb="create", **{"objectRef.subresource": None}
        ),
        create_pod({"containers": [container(privileged=False)]}),
    ),
    "k8s.pod.host_network": (
        event(
            "create",
            "deployments",
            group="apps",
            code=201,
            body=deployment({"hostNetwork": True, "containers": [container()]}),
        ),
        create_pod({"hostNetwork": True, "containers": [container()]}, ns="kube-system"),
    ),
    "k8s.pod.host_pid": (
        create_pod({"hostPID": True, "containers": [container()]}),
        create_pod({"hostPID": False, "containers": [container()]}),
    ),
    "k8s.pod.host_ipc": (
        create_pod({"hostIPC": True, "containers": [container()]}),
        create_pod({"hostIPC": True, "containers": [container()]}, code=403),
    ),
    "k8s.pod.sensitive_hostpath": (
        create_pod(
            {
                "containers": [container()],
                "volumes": [{"name": "h", "hostPath": {"path": "/var/run/docker.sock"}}],
            }
        ),
        create_pod(
            {
                "containers": [container()],
                "volumes": [{"name": "h", "hostPath": {"path": "/data/cache"}}],
            }
        ),
    ),
    "k8s.pod.dangerous_capabilities": (
        create_pod({"containers": [container(capabilities={"add": ["SYS_ADMIN"]})]}),
        create_pod({"containers": [container(capabilities={"add": ["NET_BIND_SERVICE"]})]}),
    ),
    "k8s.pod.run_as_root": (
        create_pod({"containers": [container(runAsUser=0)]}),
        create_pod({"containers": [container(runAsUser=1000)]}),
    ),
    "k8s.pod.host_port": (
        create_pod(
            {"containers": [{**container(), "ports": [{"containerPort": 80, "hostPort": 8080}]}]}
        ),
        create_pod({"containers": [{**container(), "ports": [{"containerPort": 80}]}]}),
    ),
    "k8s.pod.created_in_system_namespace": (
        create_pod({"containers": [container()]}, ns="kube-system"),
        create_pod(
            {"containers": [container()]},
            ns="kube-system",
            user="system:serviceaccount:kube-system:daemon-set-controller",
        ),
    ),
    "k8s.pod.controller_sa_assigned": (
        create_pod(
            {"serviceAccountName": "replicaset-controller", "containers": [container()]},
            ns="kube-system",
        ),
        create_pod(
            {"serviceAccountName": "coredns", "containers": [container()]}, ns="kube-system"
        ),
    ),
    "k8s.sa.created_in_kube_system": (
        event(
            "create",
            "serviceaccounts",
            ns="kube-system",
            code=201,
            body={"kind": "ServiceAccount", "metadata": {"name": "backdoor"}},
        ),
        event("create", "serviceaccounts", ns="shop", code=201),
    ),
    "k8s.sa.token_requested_by_human": (
        event("create", "serviceaccounts", name="deployer", sub="token", code=201),
        real("panther-analysis-k8s-rule-tests.jsonl", **{"objectRef.subresource": "token"}),
    ),
    "k8s.write.outside_ci": (
        event("patch", "deployments", group="apps", name="web", body={"spec": {"replicas": 3}}),
        event(
            "patch",
            "deployments",
            group="apps",
            name="web",
            body={"spec": {"replicas": 3}},
            user="system:serviceaccount:jenkins:deployer",
        ),
    ),
    "k8s.rbac.binding_powerful_role": (
        event(
            "create",
            "clusterrolebindings",
            ns=None,
            group=RBAC,
            code=201,
            body=binding("cluster-admin"),
        ),
        event("create", "clusterrolebindings", ns=None, group=RBAC, code=201, body=binding("view")),
    ),
    "k8s.rbac.role_wildcard": (
        event(
            "create",
            "clusterroles",
            ns=None,
            group=RBAC,
            code=201,
            body=role("ClusterRole", [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
        ),
        event(
            "create",
            "clusterroles",
            ns=None,
            group=RBAC,
            code=201,
            body=role(
                "ClusterRole",
                [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            ),
        ),
    ),
    "k8s.rbac.role_dangerous_verbs": (
        event(
            "create",
            "roles",
            group=RBAC,
            code=201,
            body=role(
                "Role", [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]
            ),
        ),
        event(
            "create",
            "roles",
            group=RBAC,
            code=201,
            body=role("Role", [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]),
        ),
    ),
    "k8s.rbac.role_secrets_read": (
        event(
            "update",
            "roles",
            group=RBAC,
            name="ops",
            body=role("Role", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]),
        ),
        event(
            "update",
            "roles",
            group=RBAC,
            name="ops",
            body=role("Role", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]),
        ),
    ),
    "k8s.rbac.system_role_modified": (
        event(
            "patch",
            "clusterroles",
            ns=None,
            group=RBAC,
            name="system:node",
            body={"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        ),
        event(
            "patch",
            "clusterroles",
            ns=None,
            group=RBAC,
            name="system:node",
            user="system:apiserver",
        ),
    ),
    "k8s.service.nodeport": (
        event(
            "create",
            "services",
            code=201,
            body={"kind": "Service", "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
        ),
        event(
            "create",
            "services",
            code=201,
            body={"kind": "Service", "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}},
        ),
    ),
    "k8s.service.loadbalancer": (
        event("patch", "services", name="web", body={"spec": {"type": "LoadBalancer"}}),
        event("patch", "services", name="web", body={"spec": {"type": "NodePort"}}),
    ),
    "k8s.ingress.without_tls": (
        event(
            "create",
            "ingresses",
            group="networking.k8s.io",
            code=201,
            body={"kind": "Ingress", "spec": {"rules": [{"host": "shop.example.com"}]}},
        ),
        event(
            "create",
            "ingresses",
            group="networking.k8s.io",
            code=201,
            body={
                "kind": "Ingress",
                "spec": {
                    "rules": [{"host": "shop.example.com"}],
                    "tls": [{"secretName": "shop-tls"}],
                },
            },
        ),
    ),
    "k8s.namespace.deleted": (
        event("delete", "namespaces", ns=None, name="shop"),
        event("delete", "namespaces", ns=None, name="shop", sub="finalize"),
    ),
    "k8s.events.deleted": (
        event("deletecollection", "events", ns="shop"),
        event("list", "events", ns="shop"),
    ),
    "k8s.workload.deployment_deleted": (
        event("delete", "deployments", group="apps", name="web"),
        event(
            "delete",
            "deployments",
            group="apps",
            name="web",
            user="system:serviceaccount:kube-system:generic-garbage-collector",
        ),
    ),
    "k8s.workload.cronjob_changed": (
        event("create", "cronjobs", group="batch", code=201),
        event(
            "create",
            "cronjobs",
            group="batch",
            code=201,
            user="system:serviceaccount:argocd:argocd-application-controller",
        ),
    ),
    "k8s.csr.approved": (
        event(
            "update",
            "certificatesigningrequests",
            ns=None,
            group="certificates.k8s.io",
            name="csr-8x2k",
            sub="approval",
        ),
        event(
            "update",
            "certificatesigningrequests",
            ns=None,
            group="certificates.k8s.io",
            name="csr-8x2k",
            sub="approval",
            user="system:serviceaccount:kube-system:certificate-controller",
        ),
    ),
    "k8s.admission.webhook_changed": (
        event(
            "delete",
            "validatingwebhookconfigurations",
            ns=None,
            group="admissionregistration.k8s.io",
            name="gatekeeper",
        ),
        event(
            "get",
            "validatingwebhookconfigurations",
            ns=None,
            group="admissionregistration.k8s.io",
            name="gatekeeper",
        ),
    ),
    "k8s.admission.policy_changed": (
        event(
            "delete",
            "validatingadmissionpolicies",
            ns=None,
            group="admissionregistration.k8s.io",
            name="deny-privileged",
        ),
        event(
            "update",
            "validatingadmissionpolicies",
            ns=None,
            group="admissionregistration.k8s.io",
            name="deny-privileged",
            sub="status",
            user="system:kube-controller-manager",
        ),
    ),
    "k8s.crd.changed": (
        event(
            "delete",
            "customresourcedefinitions",
            ns=None,
            group="apiextensions.k8s.io",
            name="policies.kyverno.io",
        ),
        event(
            "update",
            "customresourcedefinitions",
            ns=None,
            group="apiextensions.k8s.io",
            name="policies.kyverno.io",
            sub="status",
        ),
    ),
    "k8s.apiserver.apiservice_changed": (
        event(
            "create",
            "apiservices",
            ns=None,
            group="apiregistration.k8s.io",
            name="v1beta1.metrics.k8s.io",
            code=201,
        ),
        event(
            "create",
            "apiservices",
            ns=None,
            group="apiregistration.k8s.io",
            name="v1beta1.metrics.k8s.io",
            code=201,
            user="system:serviceaccount:kube-system:metrics-server",
        ),
    ),
    "k8s.apiserver.audit_config_changed": (
        event("update", "configmaps", ns="kube-system", name="audit-policy"),
        event("update", "configmaps", ns="kube-system", name="coredns"),
    ),
    "k8s.configmap.credentials": (
        event(
            "create",
            "configmaps",
            code=201,
            body={"kind": "ConfigMap", "data": {"DB_PASSWORD": "hunter2", "mode": "prod"}},
        ),
        real("falco-k8s-audit-traces.jsonl", **{"objectRef.resource": "configmaps"}),
    ),
    "k8s.pod.hostpath_mount": (
        create_pod(
            {
                "containers": [container()],
                "volumes": [{"name": "h", "hostPath": {"path": "/data/cache"}}],
            }
        ),
        create_pod({"containers": [container()], "volumes": [{"name": "e", "emptyDir": {}}]}),
    ),
    "k8s.rbac.binding_changed": (
        event("delete", "rolebindings", group=RBAC, name="viewers"),
        event(
            "delete",
            "rolebindings",
            group=RBAC,
            name="viewers",
            user="system:serviceaccount:kube-system:namespace-controller",
        ),
    ),
    "k8s.sa.created": (
        event("create", "serviceaccounts", ns="shop", code=201),
        event(
            "create",
            "serviceaccounts",
            ns="shop",
            code=201,
            user="system:serviceaccount:ci:pipeline",
        ),
    ),
    "k8s.workload.sidecar_injection": (
        event(
            "patch",
            "deployments",
            group="apps",
            name="web",
            body={
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "proxy", "image": "evil.example/proxy:1"}]}
                    }
                }
            },
        ),
        event(
            "patch",
            "deployments",
            group="apps",
            name="web",
            body={"spec": {"template": {"metadata": {"annotations": {"restart": "1"}}}}},
        ),
    ),
    "k8s.auth.denied_request": (
        event("get", "secrets", name="db", code=403),
        real("panther-analysis-k8s-rule-tests.jsonl", requestURI="/version"),
    ),
    "k8s.node.proxy": (
        event(
            "get",
            "nodes",
            ns=None,
            name="node-1",
            sub="proxy",
            uri="/api/v1/nodes/node-1/proxy/runningpods/",
        ),
        event("get", "nodes", ns=None, name="node-1"),
    ),
}

#: Patch requests that must fire body rules like the objects they change (JSON patch, merge
#: patch, strategic merge patch): rule id -> event.
PATCH_CASES: list[tuple[str, Event]] = [
    (
        "k8s.pod.privileged",
        event(
            "patch",
            "daemonsets",
            group="apps",
            name="agent",
            body=[
                {
                    "op": "add",
                    "path": "/spec/template/spec/containers/0/securityContext",
                    "value": {"privileged": True},
                }
            ],
        ),
    ),
    (
        "k8s.pod.privileged",
        event(
            "patch",
            "pods",
            name="web",
            body=[
                {
                    "op": "replace",
                    "path": "/spec/containers/0/securityContext/privileged",
                    "value": True,
                }
            ],
        ),
    ),
    (
        "k8s.pod.privileged",
        event(
            "patch",
            "deployments",
            group="apps",
            name="web",
            body={
                "spec": {
                    "template": {
                        "spec": {
                            "$setElementOrder/containers": [{"name": "app"}],
                            "containers": [
                                {"name": "app", "securityContext": {"privileged": True}}
                            ],
                        }
                    }
                }
            },
        ),
    ),
    (
        "k8s.pod.host_pid",
        event(
            "patch",
            "deployments",
            group="apps",
            name="web",
            body={"spec": {"template": {"spec": {"hostPID": True}}}},
        ),
    ),
    (
        "k8s.pod.sensitive_hostpath",
        event(
            "patch",
            "pods",
            name="web",
            body=[
                {
                    "op": "add",
                    "path": "/spec/volumes/-",
                    "value": {"name": "root", "hostPath": {"path": "/"}},
                }
            ],
        ),
    ),
    (
        "k8s.rbac.binding_powerful_role",
        event(
            "patch",
            "rolebindings",
            group=RBAC,
            name="b",
            body={"roleRef": {"name": "admin", "kind": "ClusterRole"}},
        ),
    ),
]

#: Variables the cases need (the pack's defaults leave watched_secrets empty).
VARIABLES = {"watched_secrets": ["db-admin"]}


def numbered(cases: dict[str, tuple[Event, Event]]) -> list[Event]:
    """The events of every case with auditIDs ``<rule>/fires`` and ``<rule>/quiet``."""
    out = []
    for rule_id, (fires, quiet) in cases.items():
        for tag, e in (("fires", fires), ("quiet", quiet)):
            e = copy.deepcopy(e)
            e["auditID"] = f"{rule_id}/{tag}"
            out.append(e)
    return out


def lines(events: list[Event]) -> bytes:
    """Events as JSON lines."""
    return "".join(json.dumps(e) + "\n" for e in events).encode()
