"""Long-lived watches: every informer of every kubelet, controller and operator, re-opened.

client-go's reflectors open a watch with a random timeout between 5 and 10 minutes and open the
next one when it ends, so watches are a steady share of any audit log, each a
``RequestReceived``, an immediate ``ResponseStarted`` and a ``ResponseComplete`` minutes later.
"""

from __future__ import annotations

from kubetrail.demo import cluster as c
from kubetrail.demo.emitter import Emitter
from kubetrail.demo.render import go_duration, objref


def _watch_specs() -> list[tuple[c.Actor, str, str]]:
    """(actor, URI up to ``resourceVersion=``, objectRef) of the cluster's long-lived watches."""
    specs: list[tuple[c.Actor, str, str]] = []
    book = "?allowWatchBookmarks=true"
    for node in c.NODES:
        k = node.kubelet
        sel = f"{book}&fieldSelector=spec.nodeName%3D{node.name}&resourceVersion="
        specs.append((k, "/api/v1/pods" + sel, objref("pods")))
        specs.append(
            (
                k,
                f"/api/v1/nodes{book}&fieldSelector=metadata.name%3D{node.name}&resourceVersion=",
                objref("nodes", name=node.name),
            )
        )
        specs.append((k, f"/api/v1/services{book}&resourceVersion=", objref("services")))
        specs.append(
            (
                k,
                f"/apis/storage.k8s.io/v1/csidrivers{book}&resourceVersion=",
                objref("csidrivers", group="storage.k8s.io"),
            )
        )
    for app in c.APPS:
        for pod in app.pods:
            k = pod.node.kubelet
            for res, name in (
                ("secrets", f"{app.name}-db-credentials"),
                ("configmaps", f"{app.name}-config"),
                ("configmaps", "kube-root-ca.crt"),
            ):
                uri = (
                    f"/api/v1/namespaces/{app.ns}/{res}{book}&fieldSelector=metadata.name%3D"
                    f"{name}&resourceVersion="
                )
                specs.append((k, uri, objref(res, app.ns, name)))
    for proxy in c.KUBE_PROXIES:
        specs.append(
            (
                proxy,
                "/apis/discovery.k8s.io/v1/endpointslices"
                + book
                + "&labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes."
                "io%2Fservice-proxy-name&resourceVersion=",
                objref("endpointslices", group="discovery.k8s.io"),
            )
        )
        specs.append(
            (
                proxy,
                f"/api/v1/services{book}&labelSelector=%21service.kubernetes.io%2F"
                "headless%2C%21service.kubernetes.io%2Fservice-proxy-name&resourceVersion=",
                objref("services"),
            )
        )
    informers = c.actor(
        c.KCM.username,
        c.KCM.groups,
        c.KCM.ip,
        f"kube-controller-manager/{c.K8S}/shared-informers",
        "",
    )
    informers = c.Actor(
        informers.username,
        informers.user,
        informers.tail,
        c.KCM.allow,
        informers.ip,
        informers.ua,
        informers.groups,
    )
    cluster_wide = [
        ("", "v1", "pods"),
        ("", "v1", "nodes"),
        ("", "v1", "services"),
        ("", "v1", "secrets"),
        ("", "v1", "configmaps"),
        ("", "v1", "namespaces"),
        ("", "v1", "serviceaccounts"),
        ("", "v1", "persistentvolumeclaims"),
        ("apps", "v1", "deployments"),
        ("apps", "v1", "replicasets"),
        ("apps", "v1", "daemonsets"),
        ("apps", "v1", "statefulsets"),
        ("batch", "v1", "jobs"),
        ("discovery.k8s.io", "v1", "endpointslices"),
        ("rbac.authorization.k8s.io", "v1", "roles"),
        ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ]
    for who, resources in (
        (informers, cluster_wide),
        (c.SCHEDULER, [*cluster_wide[:3], ("storage.k8s.io", "v1", "csinodes")]),
        (c.ARGOCD, cluster_wide),
        (c.COREDNS[0], cluster_wide[2:3] + cluster_wide[13:14]),
        (c.COREDNS[1], cluster_wide[2:3] + cluster_wide[13:14]),
        (
            c.INGRESS,
            [
                ("networking.k8s.io", "v1", "ingresses"),
                ("", "v1", "secrets"),
                ("", "v1", "configmaps"),
            ],
        ),
        (
            c.CERT_MANAGER,
            [
                ("cert-manager.io", "v1", "certificates"),
                ("", "v1", "secrets"),
                ("cert-manager.io", "v1", "certificaterequests"),
            ],
        ),
        (c.PROMETHEUS, [("", "v1", "pods"), ("", "v1", "services"), ("", "v1", "endpoints")]),
        (
            c.PROM_OPERATOR,
            [("monitoring.coreos.com", "v1", "servicemonitors"), ("", "v1", "secrets")],
        ),
    ):
        for group, version, res in resources:
            prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
            specs.append(
                (
                    who,
                    f"{prefix}/{res}{book}&resourceVersion=",
                    objref(res, group=group, version=version),
                )
            )
    return specs


_WATCHES = _watch_specs()


def watch(em: Emitter, t: int) -> None:
    """A reflector's watch: open for 5–10 minutes (client-go's random timeout), then re-opened."""
    who, uri, ref = _WATCHES[int(em.random() * len(_WATCHES))]
    seconds = 300 + int(em.random() * 300)
    timeout = go_duration(seconds * 1_000_000)
    uri = f"{uri}{em.revision()}&timeout={timeout}&timeoutSeconds={seconds}&watch=true"
    em.request(t, seconds * 1_000_000 + int(em.random() * 5_000), who, "watch", uri, ref, long=True)
