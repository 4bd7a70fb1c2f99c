"""Machine traffic: leases, watches, controllers, kubelets and a misconfigured operator.

This is most of any real audit log. Every function takes the emitter and the receive time of
the request (µs) and queues one or a few requests.
"""

from __future__ import annotations

from kubetrail.demo import bodies
from kubetrail.demo import cluster as c
from kubetrail.demo.emitter import Emitter
from kubetrail.demo.render import S201, allow, failure, forbid, objref

_LEASE_HOLDERS = [
    (c.KCM, "kube-system", "kube-controller-manager"),
    (c.SCHEDULER_LE, "kube-system", "kube-scheduler"),
    (c.CERT_MANAGER, "kube-system", "cert-manager-controller"),
    (c.ARGOCD, "argocd", "argocd-application-controller"),
    (c.PROM_OPERATOR, "monitoring", "prometheus-operator"),
    (c.INGRESS, "ingress-nginx", "ingress-nginx-leader"),
]
_LEASE_UIDS = {name: c.new_uid() for name in [n for _, _, n in _LEASE_HOLDERS] + c.APISERVER_IDS}
_HOLDERS = {name: f"{who.ip.replace('.', '-')}_{c.new_uid()}" for who, _, name in _LEASE_HOLDERS}
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/"


def node_lease(em: Emitter, t: int) -> None:
    """A kubelet renews its node lease (every 10 s per node); now and then it reads it first."""
    node = c.NODES[int(em.random() * len(c.NODES))]
    uri = f"{_LEASES}kube-node-lease/leases/{node.name}?timeout=10s"
    ref = objref("leases", "kube-node-lease", node.name, "coordination.k8s.io")
    if em.random() < 0.08:
        em.request(t, em.fast(), node.kubelet, "get", uri, ref)
        t += 2_000
    rv = em.rv()
    final = objref(
        "leases",
        "kube-node-lease",
        node.name,
        "coordination.k8s.io",
        uid=node.lease_uid,
        resource_version=rv,
    )
    body = bodies.NODE_LEASE % {
        "name": node.name,
        "ns": "kube-node-lease",
        "uid": node.lease_uid,
        "rv": rv,
        "owner_uid": node.uid,
        "renew": em.ts(t),
        "mtime": em.ts(t - 10_000_000)[:19] + "Z",
    }
    em.request(
        t,
        em.fast(),
        node.kubelet,
        "update",
        uri,
        ref,
        ref_final=final,
        level="Request",
        req_obj=body,
    )


def _renew(em: Emitter, t: int, who: c.Actor, ns: str, name: str, holder: str, uri: str) -> None:
    rv = em.rv()
    uid = _LEASE_UIDS[name]
    ref = objref("leases", ns, name, "coordination.k8s.io")
    final = objref("leases", ns, name, "coordination.k8s.io", uid=uid, resource_version=rv)
    body = bodies.LEADER_LEASE % {
        "name": name,
        "ns": ns,
        "uid": uid,
        "rv": rv,
        "holder": holder,
        "renew": em.ts(t),
        "manager": who.ua.split("/", 1)[0],
        "mtime": em.ts(t - 2_000_000)[:19] + "Z",
    }
    em.request(
        t, em.fast(), who, "update", uri, ref, ref_final=final, level="Request", req_obj=body
    )


def leader_election(em: Emitter, t: int) -> None:
    """A leader renews its lease (get then update); a standby only gets it."""
    who, ns, name = _LEASE_HOLDERS[int(em.random() * len(_LEASE_HOLDERS))]
    uri = f"{_LEASES}{ns}/leases/{name}?timeout=5s"
    ref = objref("leases", ns, name, "coordination.k8s.io")
    em.request(t, em.fast(), who, "get", uri, ref)
    if em.random() < 0.6:
        _renew(em, t + 1_500 + int(em.random() * 3_000), who, ns, name, _HOLDERS[name], uri)


def apiserver_lease(em: Emitter, t: int) -> None:
    """Each kube-apiserver renews its identity lease in kube-system."""
    i = int(em.random() * len(c.APISERVERS))
    name = c.APISERVER_IDS[i]
    _renew(em, t, c.APISERVERS[i], "kube-system", name, name, f"{_LEASES}kube-system/leases/{name}")


def discovery(em: Emitter, t: int) -> None:
    """Garbage collector and quota controller refresh API discovery every 30 s."""
    who = c.CONTROLLERS[
        "generic-garbage-collector" if em.random() < 0.5 else "resourcequota-controller"
    ]
    ann = allow(
        'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
        '"system:discovery" to Group "system:authenticated"'
    )
    em.request(t, em.fast(), who, "get", "/api?timeout=32s", ann=ann)
    em.request(t + 3_000, em.fast(), who, "get", "/apis?timeout=32s", ann=ann)


def controller_reads(em: Emitter, t: int) -> None:
    """Operators reading the Secrets and objects they manage."""
    r = em.random()
    app = em.apps[int(em.random() * len(em.apps))]
    if r < 0.3:
        who, ns, name = c.CERT_MANAGER, app.ns, f"{app.name}-tls"
    elif r < 0.5:
        who, ns, name = c.INGRESS, app.ns, f"{app.name}-tls"
    elif r < 0.7:
        who, ns, name = c.PROM_OPERATOR, "monitoring", "prometheus-k8s"
    else:
        who, ns, name = c.ARGOCD, "argocd", "cluster-prod-eu1"
    em.request(
        t,
        em.fast(),
        who,
        "get",
        f"/api/v1/namespaces/{ns}/secrets/{name}",
        objref("secrets", ns, name),
    )


def controller_writes(em: Emitter, t: int) -> None:
    """Controllers' routine writes: EndpointSlices, Events and service-account tokens."""
    r = em.random()
    app = em.apps[int(em.random() * len(em.apps))]
    pod = app.pods[int(em.random() * len(app.pods))]
    if r < 0.35:
        who = c.CONTROLLERS["endpointslice-controller"]
        name = f"{app.name}-{app.rs_hash[:5]}"
        rv = em.rv()
        endpoints = ",".join(
            bodies.ENDPOINT
            % {"ip": p.ip, "ns": app.ns, "pod": p.name, "uid": p.uid, "node": p.node.name}
            for p in app.pods
        )
        body = bodies.ENDPOINTSLICE % {
            "name": name,
            "app": app.name,
            "ns": app.ns,
            "uid": app.uid,
            "rv": rv,
            "generation": 40 + em.serial,
            "owner_uid": app.uid,
            "endpoints": f"[{endpoints}]",
        }
        em.request(
            t,
            em.slow(),
            who,
            "update",
            f"/apis/discovery.k8s.io/v1/namespaces/{app.ns}/endpointslices/{name}",
            objref("endpointslices", app.ns, name, "discovery.k8s.io"),
            ref_final=objref(
                "endpointslices", app.ns, name, "discovery.k8s.io", uid=app.uid, resource_version=rv
            ),
            level="Request",
            req_obj=body,
        )
    elif r < 0.6:
        token(em, t, app, pod)
    else:
        reason, message = _KUBELET_EVENTS[int(em.random() * len(_KUBELET_EVENTS))]
        event(
            em,
            t,
            pod.node.kubelet,
            app.ns,
            pod.name,
            pod.uid,
            "Pod",
            reason,
            message.replace("@image@", app.image),
            "kubelet",
            pod.node.name,
        )


_KUBELET_EVENTS = (
    ("Pulled", 'Container image \\"@image@:1.0.0\\" already present on machine'),
    ("Created", "Created container app"),
    ("Started", "Started container app"),
    ("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"),
    ("BackOff", "Back-off restarting failed container app in pod"),
)


def token(em: Emitter, t: int, app: c.App, pod: c.Pod) -> None:
    """A kubelet requests a fresh bound service-account token for a pod (TokenRequest)."""
    em.request(
        t,
        em.slow(),
        pod.node.kubelet,
        "create",
        f"/api/v1/namespaces/{app.ns}/serviceaccounts/{app.name}/token",
        objref("serviceaccounts", app.ns, app.name, subresource="token"),
        code=S201,
        level="Request",
        req_obj=bodies.TOKEN_REQUEST % {"pod": pod.name, "uid": pod.uid},
    )


def event(
    em: Emitter,
    t: int,
    who: c.Actor,
    ns: str,
    about: str,
    uid: str,
    kind: str,
    reason: str,
    message: str,
    component: str,
    host: str = "",
) -> None:
    """Record a core/v1 Event about an object (named ``<object>.<hex>`` as client-go does)."""
    name = f"{about}.{em.getrandbits(64):016x}"
    body = bodies.EVENT % {
        "name": name,
        "ns": ns,
        "kind": kind,
        "about": about,
        "uid": uid,
        "api": "v1" if kind == "Pod" else "apps/v1",
        "rv": em.rv(),
        "reason": reason,
        "message": message,
        "component": component,
        "host": host,
        "now": em.ts(t)[:19] + "Z",
    }
    em.request(
        t,
        em.fast(),
        who,
        "create",
        f"/api/v1/namespaces/{ns}/events",
        objref("events", ns),
        ref_final=objref("events", ns, name),
        code=S201,
        level="Request",
        req_obj=body,
    )


def kubelet_status(em: Emitter, t: int) -> None:
    """A kubelet reads its Node and patches its status (the 5-minute heartbeat report)."""
    node = c.NODES[int(em.random() * len(c.NODES))]
    k = node.kubelet
    em.request(
        t,
        em.fast(),
        k,
        "get",
        f"/api/v1/nodes/{node.name}?resourceVersion=0&timeout=10s",
        objref("nodes", name=node.name),
    )
    now = em.ts(t)[:19] + "Z"
    em.request(
        t + 4_000,
        em.slow(),
        k,
        "patch",
        f"/api/v1/nodes/{node.name}/status?timeout=10s",
        objref("nodes", name=node.name, subresource="status"),
        level="Request",
        req_obj=bodies.NODE_STATUS_PATCH % {"now": now},
    )
    if em.random() < 0.5:
        # A readiness change on one of its pods.
        app = em.apps[int(em.random() * len(em.apps))]
        if not app.pods:
            return
        pod = app.pods[int(em.random() * len(app.pods))]
        status = {
            "uid": pod.uid,
            "now": now,
            "cid": f"{em.getrandbits(256):064x}",
            "image": app.image,
            "tag": "1.0.0",
            "host_ip": pod.node.ip,
            "pod_ip": pod.ip,
        }
        em.request(
            t + 900_000,
            em.slow(),
            pod.node.kubelet,
            "patch",
            f"/api/v1/namespaces/{app.ns}/pods/{pod.name}/status",
            objref("pods", app.ns, pod.name, subresource="status"),
            level="Request",
            req_obj=bodies.POD_STATUS_PATCH % status,
        )


_ES = c.EXTERNAL_SECRETS
_ES_TARGETS = [
    ("", "v1", "secrets"),
    ("external-secrets.io", "v1beta1", "externalsecrets"),
    ("external-secrets.io", "v1beta1", "clustersecretstores"),
]
_ES_DENY = forbid(c.EXTERNAL_SECRETS_DENY)


def denied_operator(em: Emitter, t: int) -> None:
    """The broken external-secrets operator retries its cluster-wide list and is denied."""
    group, version, res = _ES_TARGETS[int(em.random() * len(_ES_TARGETS))]
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    full = f"{res}.{group}" if group else res
    message = (
        f'{full} is forbidden: User "{_ES.username}" cannot list resource "{res}" in API '
        f'group "{group}" at the cluster scope: {c.EXTERNAL_SECRETS_DENY}'
    )
    details = {"group": group, "kind": res} if group else {"kind": res}
    em.request(
        t,
        em.fast(),
        _ES,
        "list",
        f"{prefix}/{res}?limit=500&resourceVersion=0",
        objref(res, group=group, version=version),
        code=failure(403, "Forbidden", message, details),
        ann=_ES_DENY,
    )
