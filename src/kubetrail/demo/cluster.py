"""The cast of the demo cluster: its nodes, controllers, operators, CI, people and workloads.

The cast is the same for every seed (it is drawn from a fixed generator), so that demos and
documentation can name ``bob@example.com`` or ``payments-api`` and find them in any generated
log; the seed only changes the traffic. Each actor carries its pre-rendered ``user`` object and
``sourceIPs``/``userAgent`` tail, ready to be glued into events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kubetrail.demo.render import allow, gojson, rbac_allow, uuid4_from

K8S = "v1.30.2 (linux/amd64) kubernetes/3968350"
KUBECTL_130 = "kubectl/v1.30.1 ({os}) kubernetes/6911225"
KUBECTL_129 = "kubectl/v1.29.4 ({os}) kubernetes/55cb2b5"
SA_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:{ns}", "system:authenticated")

_RNG = random.Random(20260101)


def new_uid() -> str:
    """A uid for a cast member, from the cast's fixed generator."""
    return uuid4_from(_RNG.getrandbits)


def _suffix(n: int, alphabet: str = "bcdfghjklmnpqrstvwxz2456789") -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone who sends requests, with the fragments every one of its events shares.

    Attributes:
        username: ``user.username``.
        user: the rendered ``user`` object.
        tail: ``,"sourceIPs":[…],"userAgent":"…"`` as rendered.
        allow: the authorization annotations of its usual allowed requests.
        ip: the source IP.
        ua: the user agent.
        groups: ``user.groups``.
    """

    username: str
    user: str
    tail: str
    allow: str
    ip: str
    ua: str
    groups: tuple[str, ...] = ()


def actor(
    username: str,
    groups: tuple[str, ...],
    ip: str,
    ua: str,
    reason: str,
    uid: str = "",
    extra: dict[str, list[str]] | None = None,
) -> Actor:
    """Build an actor, rendering its UserInfo in the API's key order."""
    user: dict[str, object] = {"username": username}
    if uid:
        user["uid"] = uid
    if groups:
        user["groups"] = list(groups)
    if extra:
        user["extra"] = dict(sorted(extra.items()))
    tail = f',"sourceIPs":["{ip}"],"userAgent":{gojson(ua)}'
    return Actor(username, gojson(user), tail, allow(reason), ip, ua, groups)


def sa_actor(
    ns: str,
    name: str,
    ip: str,
    ua: str,
    reason: str,
    pod: Pod | None = None,
    node: Node | None = None,
) -> Actor:
    """A service account; tokens mounted in a pod carry the pod and node binding (1.30 extras)."""
    extra = {"authentication.kubernetes.io/credential-id": [f"JTI={new_uid()}"]}
    if pod is not None and node is not None:
        extra["authentication.kubernetes.io/node-name"] = [node.name]
        extra["authentication.kubernetes.io/node-uid"] = [node.uid]
        extra["authentication.kubernetes.io/pod-name"] = [pod.name]
        extra["authentication.kubernetes.io/pod-uid"] = [pod.uid]
    groups = tuple(g.format(ns=ns) for g in SA_GROUPS)
    username = f"system:serviceaccount:{ns}:{name}"
    return actor(username, groups, ip, ua, reason, uid=new_uid(), extra=extra)


@dataclass(slots=True)
class Node:
    """A node and its kubelet."""

    name: str
    ip: str
    uid: str
    kubelet: Actor
    lease_uid: str
    pod_cidr: str


@dataclass(slots=True)
class Pod:
    """A running pod of a workload."""

    name: str
    uid: str
    node: Node
    ip: str


@dataclass(slots=True)
class App:
    """A Deployment in an application namespace, with its pods, secrets and config maps."""

    ns: str
    name: str
    uid: str
    rs_hash: str
    image: str
    replicas: int
    pods: list[Pod] = field(default_factory=list)
    secrets: tuple[str, ...] = ()
    configmaps: tuple[str, ...] = ()


def _node(name: str, ip: str, index: int) -> Node:
    kubelet = actor(
        f"system:node:{name}", ("system:nodes", "system:authenticated"), ip, f"kubelet/{K8S}", ""
    )
    return Node(name, ip, new_uid(), kubelet, new_uid(), f"10.244.{index}.")


CP_NODES = [_node(f"demo-cp-{i}", f"10.0.0.{10 + i}", i - 1) for i in (1, 2, 3)]
WORKERS = [_node(f"demo-worker-{i:02d}", f"10.0.1.{20 + i}", 2 + i) for i in range(1, 10)]
NODES = CP_NODES + WORKERS


def _pod(name: str, node: Node) -> Pod:
    return Pod(name, new_uid(), node, node.pod_cidr + str(_RNG.randrange(2, 250)))


def _app(ns: str, name: str, image: str, replicas: int) -> App:
    app = App(ns, name, new_uid(), _suffix(10), image, replicas)
    for _ in range(replicas):
        app.pods.append(_pod(f"{name}-{app.rs_hash}-{_suffix(5)}", _RNG.choice(WORKERS)))
    app.secrets = (f"{name}-db-credentials", f"{name}-tls", "registry-pull")
    app.configmaps = (f"{name}-config", "kube-root-ca.crt")
    return app


APPS = [
    _app("payments", "payments-api", "registry.example.com/payments/api", 3),
    _app("payments", "payments-worker", "registry.example.com/payments/worker", 2),
    _app("checkout", "checkout-api", "registry.example.com/checkout/api", 3),
    _app("checkout", "cart", "registry.example.com/checkout/cart", 2),
    _app("catalog", "catalog-api", "registry.example.com/catalog/api", 2),
    _app("catalog", "search", "registry.example.com/catalog/search", 2),
    _app("web", "frontend", "registry.example.com/web/frontend", 3),
]
APP_NAMESPACES = ("payments", "checkout", "catalog", "web")
SYSTEM_NAMESPACES = ("kube-system", "kube-node-lease", "kube-public", "default")
OPERATOR_NAMESPACES = (
    "argocd",
    "cert-manager",
    "monitoring",
    "ingress-nginx",
    "external-secrets",
    "ci",
)

_KCM_IP = CP_NODES[0].ip
_SCHED_IP = CP_NODES[1].ip

KCM = actor(
    "system:kube-controller-manager",
    ("system:authenticated",),
    _KCM_IP,
    f"kube-controller-manager/{K8S}/leader-election",
    rbac_allow(
        "system:kube-controller-manager",
        "ClusterRole/system:kube-controller-manager",
        "User/system:kube-controller-manager",
    ),
)
SCHEDULER = actor(
    "system:kube-scheduler",
    ("system:authenticated",),
    _SCHED_IP,
    f"kube-scheduler/{K8S}/scheduler",
    rbac_allow(
        "system:kube-scheduler", "ClusterRole/system:kube-scheduler", "User/system:kube-scheduler"
    ),
)
SCHEDULER_LE = actor(
    SCHEDULER.username,
    SCHEDULER.groups,
    _SCHED_IP,
    f"kube-scheduler/{K8S}/leader-election",
    rbac_allow(
        "system:kube-scheduler", "ClusterRole/system:kube-scheduler", "User/system:kube-scheduler"
    ),
)
APISERVERS = [
    actor(
        "system:apiserver",
        ("system:authenticated", "system:masters"),
        "::1",
        f"kube-apiserver/{K8S}",
        "",
        uid=new_uid(),
    )
    for _ in CP_NODES
]
APISERVER_IDS = [f"apiserver-{_suffix(26, 'abcdefghijklmnopqrstuvwxyz234567')}" for _ in CP_NODES]


def _controller(name: str) -> Actor:
    return sa_actor(
        "kube-system",
        name,
        _KCM_IP,
        f"kube-controller-manager/{K8S}/system:serviceaccount:kube-system:{name}",
        rbac_allow(
            f"system:controller:{name}",
            f"ClusterRole/system:controller:{name}",
            f"ServiceAccount/{name}/kube-system",
        ),
    )


CONTROLLERS = {
    name: _controller(name)
    for name in (
        "replicaset-controller",
        "deployment-controller",
        "endpointslice-controller",
        "endpointslicemirroring-controller",
        "namespace-controller",
        "generic-garbage-collector",
        "node-controller",
        "daemon-set-controller",
        "statefulset-controller",
        "job-controller",
        "resourcequota-controller",
        "horizontal-pod-autoscaler",
        "pvc-protection-controller",
        "service-account-controller",
        "root-ca-cert-publisher",
    )
}


def _operator(
    ns: str, sa: str, ua: str, binding: str, role: str, reason: str | None = None
) -> Actor:
    node = _RNG.choice(WORKERS)
    pod = _pod(f"{sa}-{_suffix(10)}-{_suffix(5)}", node)
    if reason is None:
        reason = rbac_allow(binding, f"ClusterRole/{role}", f"ServiceAccount/{sa}/{ns}")
    return sa_actor(ns, sa, pod.ip, ua, reason, pod=pod, node=node)


ARGOCD = _operator(
    "argocd",
    "argocd-application-controller",
    "argocd-application-controller/v2.11.3+3f344d5 (linux/amd64) kubernetes/$Format",
    "argocd-application-controller",
    "argocd-application-controller",
)
CERT_MANAGER = _operator(
    "cert-manager",
    "cert-manager",
    "cert-manager-controller/v1.15.1 (linux/amd64) cert-manager/be6d9c3d9e8b9d0d",
    "cert-manager-controller-certificates",
    "cert-manager-controller-certificates",
)
PROMETHEUS = _operator(
    "monitoring", "prometheus-k8s", "Prometheus/2.53.0", "prometheus-k8s", "prometheus-k8s"
)
PROM_OPERATOR = _operator(
    "monitoring",
    "prometheus-operator",
    "PrometheusOperator/0.75.0",
    "prometheus-operator",
    "prometheus-operator",
)
INGRESS = _operator(
    "ingress-nginx",
    "ingress-nginx",
    "nginx-ingress-controller/v1.10.1 (linux/amd64) ingress-nginx/4fb5aac1dd3669daa3a1",
    "ingress-nginx",
    "ingress-nginx",
)
#: A broken operator: its ClusterRole was deleted by a half-done uninstall, the binding was
#: left behind, so every list/watch it retries is denied with an RBAC "not found" reason.
EXTERNAL_SECRETS = _operator(
    "external-secrets",
    "external-secrets",
    "external-secrets/v0.9.19 (linux/amd64) kubernetes/$Format",
    "",
    "",
    reason="",
)
EXTERNAL_SECRETS_DENY = (
    'RBAC: clusterrole.rbac.authorization.k8s.io "external-secrets-controller" not found'
)
COREDNS = [
    _operator(
        "kube-system",
        "coredns",
        "coredns/v1.11.1 (linux/amd64) kubernetes/$Format",
        "system:coredns",
        "system:coredns",
    )
    for _ in range(2)
]
KUBE_PROXIES = [
    sa_actor(
        "kube-system",
        "kube-proxy",
        n.ip,
        f"kube-proxy/{K8S}",
        rbac_allow(
            "kubeadm:node-proxier",
            "ClusterRole/system:node-proxier",
            "ServiceAccount/kube-proxy/kube-system",
        ),
        pod=_pod(f"kube-proxy-{_suffix(5)}", n),
        node=n,
    )
    for n in NODES
]
CI = _operator(
    "ci",
    "jenkins",
    KUBECTL_130.format(os="linux/amd64"),
    "ci-deployer",
    "ci-deployer",
)


@dataclass(frozen=True, slots=True)
class Human:
    """A person with kubectl, seen from one or two source IPs.

    Attributes:
        actors: one actor per source IP (office, VPN).
        admin: may read secrets, exec anywhere and change RBAC.
        exec_verb: ``create`` for SPDY (kubectl ≤1.29), ``get`` for WebSocket exec (1.30+).
    """

    actors: tuple[Actor, ...]
    admin: bool
    exec_verb: str
    reason: str


def _human(name: str, groups: tuple[str, ...], ips: tuple[str, ...], ua: str, admin: bool) -> Human:
    group = groups[0]
    if admin:
        binding = "cluster-admin" if group == "system:masters" else "cluster-admins"
        reason = rbac_allow(binding, "ClusterRole/cluster-admin", f"Group/{group}")
    else:
        reason = rbac_allow(f"{group}-edit", "ClusterRole/edit", f"Group/{group}", ns="{ns}")
    actors = tuple(actor(name, groups, ip, ua, "") for ip in ips)
    return Human(actors, admin, "create" if "v1.29" in ua else "get", reason)


HUMANS = [
    _human(
        "alice@example.com",
        ("cluster-admins", "sre", "system:authenticated"),
        ("203.0.113.10", "10.8.0.14"),
        KUBECTL_130.format(os="darwin/arm64"),
        True,
    ),
    _human(
        "dave@example.com",
        ("sre", "system:authenticated"),
        ("203.0.113.10", "10.8.0.22"),
        KUBECTL_130.format(os="linux/amd64"),
        True,
    ),
    _human(
        "bob@example.com",
        ("dev", "system:authenticated"),
        ("198.51.100.24",),
        KUBECTL_129.format(os="linux/amd64"),
        False,
    ),
    _human(
        "carol@example.com",
        ("dev", "system:authenticated"),
        ("203.0.113.41", "10.8.0.31"),
        KUBECTL_130.format(os="windows/amd64"),
        False,
    ),
    _human(
        "oidc:erin",
        ("dev", "system:authenticated"),
        ("203.0.113.10",),
        KUBECTL_130.format(os="darwin/arm64"),
        False,
    ),
]
#: The break-glass client certificate from kubeadm, used now and then.
KUBERNETES_ADMIN = _human(
    "kubernetes-admin",
    ("system:masters", "system:authenticated"),
    ("10.0.0.11",),
    KUBECTL_130.format(os="linux/amd64"),
    True,
)

#: A single noisy address sending requests with a stolen, expired token (401s).
SCANNER_IP = "198.51.100.77"
SCANNER_AGENTS = ("python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1")
ANONYMOUS = actor(
    "system:anonymous",
    ("system:unauthenticated",),
    SCANNER_IP,
    "curl/8.5.0",
    rbac_allow(
        "system:public-info-viewer",
        "ClusterRole/system:public-info-viewer",
        "Group/system:unauthenticated",
    ),
)
