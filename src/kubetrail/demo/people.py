"""People with kubectl, the break-glass admin, and strangers knocking on the API.

Permissions follow a small, plausible RBAC setup: ``cluster-admins`` and ``sre`` may do
anything; ``dev`` may edit ``checkout``, ``catalog`` and ``web`` and only view ``payments`` (no
Secrets, no exec there), and nothing cluster-wide or in system namespaces. Whatever a person
tries outside that is denied (403, ``decision: forbid``), which is how most human denials look
in real logs.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from kubetrail.demo import bodies
from kubetrail.demo import cluster as c
from kubetrail.demo.emitter import Emitter
from kubetrail.demo.render import S101, S200, allow, failure, forbid, gojson, objref
from kubetrail.demo.workloads import create_pod, delete_pod

_EDIT_NS = ("checkout", "catalog", "web")
_VIEW_VERBS = ("get", "list", "watch")
_DISCOVERY = allow(
    'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
    '"system:discovery" to Group "system:authenticated"'
)
_FORBID = forbid("")
_COMMANDS = (
    ("sh",),
    ("sh", "-c", "ls -la"),
    ("cat", "/etc/app/config.yaml"),
    ("env",),
    ("bash",),
    ("sh", "-c", "curl -s localhost:8080/debug/vars"),
)


@lru_cache(maxsize=256)
def _verdict(human: c.Human, verb: str, resource: str, ns: str) -> str | None:
    """The annotations fragment of an allowed request, or None when RBAC denies it."""
    if human.admin:
        return allow(human.reason)
    if ns == "payments" and verb in _VIEW_VERBS and resource not in ("secrets", "pods/exec"):
        return allow(
            human.reason.replace("{ns}", ns)
            .replace('"edit"', '"view"')
            .replace("dev-edit", "dev-view")
        )
    if ns in _EDIT_NS:
        return allow(human.reason.replace("{ns}", ns))
    return None


def _call(
    em: Emitter,
    t: int,
    h: c.Human,
    who: c.Actor,
    verb: str,
    uri: str,
    resource: str,
    ns: str = "",
    name: str = "",
    sub: str = "",
    group: str = "",
    *,
    lat: int = 0,
    long: bool = False,
    code: str = S200,
    level: str = "Metadata",
    req_obj: str = "",
    resp_obj: str = "",
) -> bool:
    """Send one kubectl request, allowed or denied by the RBAC model; True when allowed."""
    full = f"{resource}/{sub}" if sub else resource
    ann = _verdict(h, verb, full, ns)
    ref = objref(resource, ns, name, group, subresource=sub)
    if ann is not None:
        if not lat:
            lat = em.fast() if verb in _VIEW_VERBS else em.slow()
        em.request(
            t,
            lat,
            who,
            verb,
            uri,
            ref,
            ann=ann,
            long=long,
            code=code,
            level=level,
            req_obj=req_obj,
            resp_obj=resp_obj,
        )
        return True
    qualified = f"{resource}.{group}" if group else resource
    target = f'{qualified} "{name}"' if name else qualified
    scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    message = (
        f'{target} is forbidden: User "{who.username}" cannot {verb} resource "{full}" in '
        f'API group "{group}" {scope}'
    )
    details: dict[str, str] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = resource
    em.request(
        t,
        em.fast(),
        who,
        verb,
        uri,
        ref,
        ann=_FORBID,
        level=level,
        code=failure(403, "Forbidden", message, details),
        long=long,  # a denied watch/exec/log still writes its headers: ResponseStarted (403)
    )
    return False


def human_session(em: Emitter, t: int) -> None:
    """A person runs a few kubectl commands: look around, read a Secret, exec, edit, delete."""
    r = em.random()
    h = c.HUMANS[int(em.random() * len(c.HUMANS))] if r > 0.01 else c.KUBERNETES_ADMIN
    who = h.actors[int(em.random() * len(h.actors))]
    app = em.apps[int(em.random() * len(em.apps))]
    ns = app.ns if em.random() < 0.85 else "kube-system"
    pod = app.pods[int(em.random() * len(app.pods))].name if app.pods else app.name
    if em.random() < 0.15:
        em.request(t, em.fast(), who, "get", "/api?timeout=32s", ann=_DISCOVERY)
        em.request(t + 9_000, em.fast(), who, "get", "/apis?timeout=32s", ann=_DISCOVERY)
        t += 40_000
    base = f"/api/v1/namespaces/{ns}"
    r = em.random()
    if r < 0.30:  # look around, maybe follow logs
        _call(em, t, h, who, "list", f"{base}/pods?limit=500", "pods", ns)
        t += 2_000_000 + int(em.random() * 20_000_000)
        if _call(em, t, h, who, "get", f"{base}/pods/{pod}", "pods", ns, pod) and em.random() < 0.5:
            lat = 2_000_000 + int(em.random() * 180_000_000)
            _call(
                em,
                t + 5_000_000,
                h,
                who,
                "get",
                f"{base}/pods/{pod}/log?container=app&follow=true&tailLines=100",
                "pods",
                ns,
                pod,
                "log",
                long=True,
                lat=lat,
            )
    elif r < 0.45:  # secrets
        secret = app.secrets[int(em.random() * len(app.secrets))]
        _call(em, t, h, who, "list", f"{base}/secrets?limit=500", "secrets", ns)
        _call(em, t + 4_000_000, h, who, "get", f"{base}/secrets/{secret}", "secrets", ns, secret)
    elif r < 0.60:  # exec
        cmd = _COMMANDS[int(em.random() * len(_COMMANDS))]
        query = "&".join(f"command={quote(part, safe='')}" for part in cmd) + "&container=app"
        tty = len(cmd) == 1
        query += "&stdin=true&stdout=true&tty=true" if tty else "&stderr=true&stdout=true"
        if _call(em, t, h, who, "get", f"{base}/pods/{pod}", "pods", ns, pod):
            lat = (
                (30_000_000 + int(em.random() * 1_200_000_000))
                if tty
                else 800_000 + int(em.random() * 3e6)
            )
            _call(
                em,
                t + 1_500_000,
                h,
                who,
                h.exec_verb,
                f"{base}/pods/{pod}/exec?{query}",
                "pods",
                ns,
                pod,
                "exec",
                long=True,
                lat=lat,
                code=S101,
            )
    elif r < 0.72:  # edit: apply a config map or scale
        _edit(em, t, h, who, app)
    elif r < 0.80:  # delete a pod; the replicaset controller replaces it
        if app.pods and _verdict(h, "delete", "pods", app.ns) is not None:
            rs = f"{app.name}-{app.rs_hash}"
            if delete_pod(em, t, who, app, 0, ann=_verdict(h, "delete", "pods", app.ns)):
                create_pod(em, t + 60_000, app, rs, app.uid, "1.0.0")
        else:
            _call(em, t, h, who, "delete", f"{base}/pods/{pod}", "pods", ns, pod)
    elif r < 0.86:  # port-forward
        _call(
            em,
            t,
            h,
            who,
            "create",
            f"{base}/pods/{pod}/portforward",
            "pods",
            ns,
            pod,
            "portforward",
            long=True,
            lat=60_000_000 + int(em.random() * 900_000_000),
            code=S101,
        )
    elif r < 0.93:  # impersonation: an admin checks what a developer sees
        _impersonate(em, t, app)
    else:  # nodes, cluster-wide
        _call(em, t, h, who, "list", "/api/v1/nodes?limit=500", "nodes")


def _edit(em: Emitter, t: int, h: c.Human, who: c.Actor, app: c.App) -> None:
    ns, name = app.ns, f"{app.name}-config"
    uri = f"/api/v1/namespaces/{ns}/configmaps/{name}"
    if em.random() < 0.6:
        if not _call(em, t, h, who, "get", uri, "configmaps", ns, name):
            return
        level = ("debug", "info", "warn")[int(em.random() * 3)]
        fill = {
            "name": name,
            "ns": ns,
            "uid": app.uid,
            "rv": em.rv(),
            "app": app.name,
            "level": level,
        }
        _call(
            em,
            t + 300_000,
            h,
            who,
            "patch",
            uri + "?fieldManager=kubectl-client-side-apply",
            "configmaps",
            ns,
            name,
            level="RequestResponse",
            req_obj=bodies.CONFIGMAP_PATCH % fill,
            resp_obj=bodies.CONFIGMAP % fill,
        )
    else:
        replicas = 2 + int(em.random() * 4)
        scale = gojson(
            {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": app.name,
                    "namespace": ns,
                    "uid": app.uid,
                    "resourceVersion": em.rv(),
                },
                "spec": {"replicas": replicas},
                "status": {
                    "replicas": app.replicas,
                    "selector": f"app.kubernetes.io/name={app.name}",
                },
            }
        )
        _call(
            em,
            t,
            h,
            who,
            "patch",
            f"/apis/apps/v1/namespaces/{ns}/deployments/{app.name}/scale",
            "deployments",
            ns,
            app.name,
            "scale",
            "apps",
            level="RequestResponse",
            req_obj=f'{{"spec":{{"replicas":{replicas}}}}}',
            resp_obj=scale,
        )


def _impersonate(em: Emitter, t: int, app: c.App) -> None:
    admin = c.HUMANS[0]
    target = c.HUMANS[2 + int(em.random() * 3)]
    imp = ',"impersonatedUser":' + gojson(
        {"username": target.actors[0].username, "groups": list(target.actors[0].groups)}
    )
    ns = app.ns
    uri = f"/api/v1/namespaces/{ns}/secrets?limit=500"
    ann = _verdict(target, "list", "secrets", ns)
    who = admin.actors[0]
    if ann is not None:
        em.request(t, em.fast(), who, "list", uri, objref("secrets", ns), ann=ann, imp=imp)
        return
    message = (
        f'secrets is forbidden: User "{target.actors[0].username}" cannot list resource '
        f'"secrets" in API group "" in the namespace "{ns}"'
    )
    em.request(
        t,
        em.fast(),
        who,
        "list",
        uri,
        objref("secrets", ns),
        ann=_FORBID,
        imp=imp,
        code=failure(403, "Forbidden", message, {"kind": "secrets"}),
    )


_PROBES = (
    ("list", "/api/v1/namespaces/kube-system/secrets", objref("secrets", "kube-system")),
    ("list", "/api/v1/pods", objref("pods")),
    (
        "get",
        "/api/v1/namespaces/default/secrets/default-token",
        objref("secrets", "default", "default-token"),
    ),
    ("get", "/version", ""),
    ("get", "/apis", ""),
)


def stranger(em: Emitter, t: int) -> None:
    """One noisy address: a burst of 401s with a stale token, sometimes anonymous probes."""
    ua = c.SCANNER_AGENTS[int(em.random() * len(c.SCANNER_AGENTS))]
    for _ in range(1 + int(em.random() * 4)):
        verb, uri, ref = _PROBES[int(em.random() * len(_PROBES))]
        em.failed_auth(t, c.SCANNER_IP, ua, verb, uri, ref, "bearer")
        t += 200_000 + int(em.random() * 2_000_000)
    if em.random() < 0.3:
        anon = c.ANONYMOUS
        em.request(t, em.fast(), anon, "get", "/version")
        message = (
            'secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in '
            'API group "" in the namespace "kube-system"'
        )
        em.request(
            t + 900_000,
            em.fast(),
            anon,
            "list",
            "/api/v1/namespaces/kube-system/secrets",
            objref("secrets", "kube-system"),
            ann=_FORBID,
            code=failure(403, "Forbidden", message, {"kind": "secrets"}),
        )
