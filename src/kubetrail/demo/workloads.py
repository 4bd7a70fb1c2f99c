"""Changes to workloads: CI rollouts, pod replacement, preview namespaces and RBAC edits.

A rollout is a causal chain, as in a real cluster: CI patches a Deployment, the deployment
controller creates a ReplicaSet, the replicaset controller creates Pods, the scheduler binds
them, kubelets report them running, and the old pods are deleted. The writes carry bodies at the
demo policy's Request/RequestResponse levels, which is where most of the log's bytes are.
"""

from __future__ import annotations

from kubetrail.demo import bodies
from kubetrail.demo import cluster as c
from kubetrail.demo.emitter import Emitter
from kubetrail.demo.render import S201, allow, gojson, objref
from kubetrail.demo.system import event, token

_RR = "RequestResponse"
_RSC = c.CONTROLLERS["replicaset-controller"]
_DEPC = c.CONTROLLERS["deployment-controller"]
_NSC = c.CONTROLLERS["namespace-controller"]
# PodSecurity admission annotates pod creates; "pod-security…" sorts after "authorization…".
_POD_CREATE_ANN = (
    _RSC.allow[:-1] + ',"pod-security.kubernetes.io/enforce-policy":"baseline:latest"}'
)


def _created(em: Emitter, t: int) -> str:
    return em.ts(t)[:19] + "Z"


def create_pod(em: Emitter, t: int, app: c.App, rs_name: str, rs_uid: str, tag: str) -> int:
    """The replicaset controller creates a pod, the scheduler binds it, the kubelet starts it.

    Returns:
        The time the chain ends (µs).
    """
    node = c.WORKERS[int(em.random() * len(c.WORKERS))]
    pod = c.Pod(
        f"{rs_name}-{em.getrandbits(25):07x}"[: len(rs_name) + 6],
        em.uid(),
        node,
        node.pod_cidr + str(2 + int(em.random() * 248)),
    )
    fill = {
        "name": pod.name,
        "generate": rs_name + "-",
        "ns": app.ns,
        "uid": pod.uid,
        "rv": em.rv(),
        "created": _created(em, t),
        "app": app.name,
        "hash": rs_name[-10:],
        "owner": rs_name,
        "owner_uid": rs_uid,
        "image": app.image,
        "tag": tag,
        "vol": f"{em.getrandbits(20):05x}",
    }
    ns = app.ns
    em.request(
        t,
        em.slow(),
        _RSC,
        "create",
        f"/api/v1/namespaces/{ns}/pods",
        objref("pods", ns),
        level=_RR,
        code=S201,
        req_obj=bodies.POD_REQUEST % fill,
        resp_obj=bodies.POD_RESPONSE % fill,
        ann=_POD_CREATE_ANN,
    )
    event(
        em,
        t + 3_000,
        _RSC,
        ns,
        rs_name,
        rs_uid,
        "ReplicaSet",
        "SuccessfulCreate",
        f"Created pod: {pod.name}",
        "replicaset-controller",
    )
    t += 8_000 + int(em.random() * 20_000)
    em.request(
        t,
        em.slow(),
        c.SCHEDULER,
        "create",
        f"/api/v1/namespaces/{ns}/pods/{pod.name}/binding",
        objref("pods", ns, pod.name, subresource="binding"),
        level=_RR,
        code=S201,
        req_obj=bodies.BINDING % {"name": pod.name, "ns": ns, "uid": pod.uid, "node": node.name},
        resp_obj=bodies.STATUS_SUCCESS,
    )
    t += 300_000 + int(em.random() * 700_000)
    token(em, t, app, pod)
    t += 1_500_000 + int(em.random() * 6_000_000)
    status = {
        "uid": pod.uid,
        "now": _created(em, t),
        "cid": f"{em.getrandbits(256):064x}",
        "image": app.image,
        "tag": tag,
        "host_ip": node.ip,
        "pod_ip": pod.ip,
    }
    em.request(
        t,
        em.slow(),
        node.kubelet,
        "patch",
        f"/api/v1/namespaces/{ns}/pods/{pod.name}/status",
        objref("pods", ns, pod.name, subresource="status"),
        level="Request",
        req_obj=bodies.POD_STATUS_PATCH % status,
    )
    app.pods.append(pod)
    return t


def delete_pod(
    em: Emitter, t: int, who: c.Actor, app: c.App, index: int, ann: str | None = None
) -> bool:
    """Delete ``app.pods[index]`` (graceful delete: the response is the pod, still present)."""
    pod = app.pods[index]
    fill = {
        "name": pod.name,
        "generate": pod.name[:-5],
        "ns": app.ns,
        "uid": pod.uid,
        "rv": em.rv(),
        "created": "2025-12-30T10:02:11Z",
        "app": app.name,
        "hash": app.rs_hash,
        "owner": f"{app.name}-{app.rs_hash}",
        "owner_uid": app.uid,
        "image": app.image,
        "tag": "1.0.0",
        "vol": "a1b2c",
    }
    ok = em.request(
        t,
        em.slow(),
        who,
        "delete",
        f"/api/v1/namespaces/{app.ns}/pods/{pod.name}",
        objref("pods", app.ns, pod.name),
        level=_RR,
        req_obj=bodies.DELETE_OPTIONS,
        resp_obj=bodies.POD_RESPONSE % fill,
        ann=ann,
    )
    if ok:
        del app.pods[index]
    return ok


def rollout(em: Emitter, t: int) -> None:
    """CI (Jenkins) deploys a new image with ``kubectl apply`` and the controllers roll it out."""
    app = em.apps[int(em.random() * len(em.apps))]
    if not em.fits(12 * app.replicas + 10):
        return
    em.serial += 1
    tag = f"1.{em.serial // 10}.{em.serial % 10}"
    ns, name = app.ns, app.name
    uri = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
    ref = objref("deployments", ns, name, "apps")
    em.request(t, em.fast(), c.CI, "get", uri, ref)
    t += 60_000 + int(em.random() * 100_000)
    fill = {
        "app": name,
        "ns": ns,
        "image": app.image,
        "tag": tag,
        "replicas": app.replicas,
        "uid": app.uid,
        "rv": em.rv(),
        "generation": em.serial + 3,
        "observed": em.serial + 2,
        "revision": str(em.serial + 3),
        "vol": "x7k2p",
    }
    em.request(
        t,
        em.slow(),
        c.CI,
        "patch",
        uri + "?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
        ref,
        level=_RR,
        req_obj=bodies.DEPLOY_PATCH % fill,
        resp_obj=bodies.DEPLOYMENT % fill,
    )
    t += 20_000 + int(em.random() * 40_000)
    rs_hash = f"{em.getrandbits(40):010x}"
    rs_name, rs_uid = f"{name}-{rs_hash}", em.uid()
    rs = bodies.REPLICASET % {
        **fill,
        "name": rs_name,
        "uid": rs_uid,
        "hash": rs_hash,
        "created": _created(em, t),
        "owner_uid": app.uid,
    }
    em.request(
        t,
        em.slow(),
        _DEPC,
        "create",
        f"/apis/apps/v1/namespaces/{ns}/replicasets",
        objref("replicasets", ns, group="apps"),
        ref_final=objref("replicasets", ns, rs_name, "apps"),
        level=_RR,
        code=S201,
        req_obj=rs,
        resp_obj=rs,
    )
    event(
        em,
        t + 2_000,
        _DEPC,
        ns,
        name,
        app.uid,
        "Deployment",
        "ScalingReplicaSet",
        f"Scaled up replica set {rs_name} to {app.replicas}",
        "deployment-controller",
    )
    for _ in range(app.replicas):
        t += 100_000 + int(em.random() * 300_000)
        end = create_pod(em, t, app, rs_name, rs_uid, tag)
        delete_pod(em, end + 200_000, _RSC, app, 0)
    em.request(
        t + 50_000,
        em.slow(),
        _DEPC,
        "update",
        uri + "/status",
        objref("deployments", ns, name, "apps", subresource="status"),
    )
    app.rs_hash = rs_hash


def preview_namespace(em: Emitter, t: int) -> None:
    """CI creates a preview namespace with a config map and a Secret, and deletes it later."""
    if not em.fits(18):
        return
    em.serial += 1
    ns = f"preview-pr-{1200 + em.serial}"
    uid = em.uid()
    ns_obj = gojson(
        {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": ns,
                "uid": uid,
                "resourceVersion": em.rv(),
                "creationTimestamp": _created(em, t),
                "labels": {"kubernetes.io/metadata.name": ns},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
    )
    em.request(
        t,
        em.slow(),
        c.CI,
        "create",
        "/api/v1/namespaces?fieldManager=kubectl-client-side-apply",
        objref("namespaces"),
        ref_final=objref("namespaces", ns, ns),
        level=_RR,
        code=S201,
        req_obj=gojson({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns}}),
        resp_obj=ns_obj,
    )
    t += 400_000
    cm = bodies.CONFIGMAP % {
        "name": "preview-config",
        "ns": ns,
        "uid": em.uid(),
        "rv": em.rv(),
        "app": "frontend",
        "level": "debug",
    }
    em.request(
        t,
        em.slow(),
        c.CI,
        "create",
        f"/api/v1/namespaces/{ns}/configmaps",
        objref("configmaps", ns),
        ref_final=objref("configmaps", ns, "preview-config"),
        level=_RR,
        code=S201,
        req_obj=cm,
        resp_obj=cm,
    )
    t += 300_000
    b64 = f"{em.getrandbits(96):024x}"
    em.request(
        t,
        em.slow(),
        c.CI,
        "create",
        f"/api/v1/namespaces/{ns}/secrets",
        objref("secrets", ns),
        ref_final=objref("secrets", ns, "preview-db"),
        level="Request",
        code=S201,
        req_obj=bodies.SECRET_CREATE % {"name": "preview-db", "ns": ns, "b64": b64},
    )
    t += (20 + int(em.random() * 40)) * 60_000_000
    em.request(
        t,
        em.slow(),
        c.CI,
        "delete",
        f"/api/v1/namespaces/{ns}",
        objref("namespaces", ns, ns),
        level=_RR,
        req_obj=bodies.DELETE_OPTIONS,
        resp_obj=ns_obj.replace('"Active"', '"Terminating"'),
    )
    for res in ("pods", "configmaps", "secrets", "serviceaccounts"):
        t += 50_000
        em.request(
            t,
            em.slow(),
            _NSC,
            "deletecollection",
            f"/api/v1/namespaces/{ns}/{res}",
            objref(res, ns),
        )


def rbac_change(em: Emitter, t: int) -> None:
    """An admin grants (or revokes) a role in a namespace; Argo CD syncs a ClusterRoleBinding."""
    r = em.random()
    if r < 0.25:
        who = c.ARGOCD
        name = f"monitoring-reader-{em.getrandbits(16):04x}"
        body = {
            "kind": "ClusterRoleBinding",
            "name": name,
            "subject_kind": "ServiceAccount",
            "subject": "prometheus-k8s",
            "role": "view",
        }
        uri = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        ref, final, tmpl, ns = (
            objref("clusterrolebindings", group="rbac.authorization.k8s.io"),
            objref("clusterrolebindings", name=name, group="rbac.authorization.k8s.io"),
            bodies.CLUSTERROLEBINDING,
            "",
        )
        ann = None
    else:
        human = c.HUMANS[int(em.random() * 2)]
        who = human.actors[0]
        ns = c.APP_NAMESPACES[int(em.random() * len(c.APP_NAMESPACES))]
        subject = ("bob@example.com", "carol@example.com", "oidc:erin")[int(em.random() * 3)]
        name = f"{subject.split('@')[0].removeprefix('oidc:')}-{'edit' if r < 0.7 else 'admin'}"
        body = {
            "kind": "RoleBinding",
            "name": name,
            "ns": ns,
            "subject_kind": "User",
            "subject": subject,
            "role": name.rsplit("-", 1)[1],
        }
        uri = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"
        ref = objref("rolebindings", ns, group="rbac.authorization.k8s.io")
        final = objref("rolebindings", ns, name, "rbac.authorization.k8s.io")
        tmpl = bodies.ROLEBINDING
        ann = allow(human.reason)
    obj = tmpl % body
    if r > 0.9:
        em.request(
            t,
            em.slow(),
            who,
            "delete",
            f"{uri}/{name}",
            final,
            level=_RR,
            ann=ann,
            resp_obj='{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",'
            f'"details":{{"name":"{name}","group":"rbac.authorization.k8s.io","kind":'
            f'"{"rolebindings" if ns else "clusterrolebindings"}","uid":"{em.uid()}"}}}}',
        )
        return
    em.request(
        t,
        em.slow(),
        who,
        "create",
        uri + "?fieldManager=kubectl-create&fieldValidation=Strict",
        ref,
        ref_final=final,
        level=_RR,
        code=S201,
        ann=ann,
        req_obj=obj,
        resp_obj=obj,
    )
