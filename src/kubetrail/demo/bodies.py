"""Request and response objects (``requestObject``/``responseObject``) of the demo traffic.

Each object is rendered once into a ``%``-format template: ``"@name@"`` placeholders become
``%(name)s`` inside a JSON string, ``"#name#"`` placeholders become raw JSON (numbers,
objects). Filling a template is one string operation, which keeps bodies cheap.
"""

from __future__ import annotations

import re
from typing import Any

from kubetrail.demo.render import gojson


def template(obj: Any) -> str:
    """Render ``obj`` as a ``%``-format template (see the module docstring)."""
    text = gojson(obj).replace("%", "%%")
    text = re.sub(r'"#(\w+)#"', r"%(\1)s", text)
    return re.sub(r"@(\w+)@", r"%(\1)s", text)


_META_OWNED = {
    "name": "@name@",
    "generateName": "@generate@",
    "namespace": "@ns@",
    "uid": "@uid@",
    "resourceVersion": "@rv@",
    "creationTimestamp": "@created@",
    "labels": {"app.kubernetes.io/name": "@app@", "pod-template-hash": "@hash@"},
    "ownerReferences": [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "@owner@",
            "uid": "@owner_uid@",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ],
}

_CONTAINER = {
    "name": "app",
    "image": "@image@:@tag@",
    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
    "env": [
        {"name": "LOG_LEVEL", "value": "info"},
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "@app@-db-credentials", "key": "password"}},
        },
    ],
    "resources": {
        "limits": {"memory": "512Mi"},
        "requests": {"cpu": "250m", "memory": "256Mi"},
    },
    "volumeMounts": [
        {"name": "config", "readOnly": True, "mountPath": "/etc/app"},
        {
            "name": "kube-api-access-@vol@",
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        },
    ],
    "livenessProbe": {
        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    },
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "imagePullPolicy": "IfNotPresent",
    "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
}

_POD_SPEC = {
    "volumes": [
        {"name": "config", "configMap": {"name": "@app@-config", "defaultMode": 420}},
        {
            "name": "kube-api-access-@vol@",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                ],
                "defaultMode": 420,
            },
        },
    ],
    "containers": [_CONTAINER],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "serviceAccountName": "@app@",
    "serviceAccount": "@app@",
    "securityContext": {"fsGroup": 2000},
    "imagePullSecrets": [{"name": "registry-pull"}],
    "schedulerName": "default-scheduler",
    "tolerations": [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ],
    "priority": 0,
    "enableServiceLinks": True,
    "preemptionPolicy": "PreemptLowerPriority",
}

#: The pod the replicaset controller POSTs (no uid, resourceVersion or status yet).
POD_REQUEST = template(
    {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "@generate@",
            "namespace": "@ns@",
            "creationTimestamp": None,
            "labels": _META_OWNED["labels"],
            "ownerReferences": _META_OWNED["ownerReferences"],
        },
        "spec": {
            **_POD_SPEC,
            "volumes": _POD_SPEC["volumes"][:1],
            "containers": [{**_CONTAINER, "volumeMounts": _CONTAINER["volumeMounts"][:1]}],
        },
        "status": {},
    }
)
#: The pod as stored (also the response of a delete, then with a deletionTimestamp).
POD_RESPONSE = template(
    {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": _META_OWNED,
        "spec": _POD_SPEC,
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
)

_LAST_APPLIED_DEPLOY = gojson(
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "annotations": {},
            "labels": {"app.kubernetes.io/name": "@app@"},
            "name": "@app@",
            "namespace": "@ns@",
        },
        "spec": {
            "replicas": "#replicas#",
            "selector": {"matchLabels": {"app.kubernetes.io/name": "@app@"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "@app@"}},
                "spec": {
                    "containers": [
                        {
                            "image": "@image@:@tag@",
                            "name": "app",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                        }
                    ],
                    "serviceAccountName": "@app@",
                },
            },
        },
    }
).replace('"#replicas#"', "#replicas#")

#: kubectl apply's strategic merge patch of a Deployment (new image, new last-applied).
DEPLOY_PATCH = template(
    {
        "metadata": {
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": _LAST_APPLIED_DEPLOY + "\n"
            }
        },
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}],
                    "containers": [{"image": "@image@:@tag@", "name": "app"}],
                }
            }
        },
    }
).replace("#replicas#", "%(replicas)s")

DEPLOYMENT = template(
    {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": "@app@",
            "namespace": "@ns@",
            "uid": "@uid@",
            "resourceVersion": "@rv@",
            "generation": "#generation#",
            "creationTimestamp": "2025-09-14T08:21:37Z",
            "labels": {"app.kubernetes.io/name": "@app@"},
            "annotations": {"deployment.kubernetes.io/revision": "@revision@"},
        },
        "spec": {
            "replicas": "#replicas#",
            "selector": {"matchLabels": {"app.kubernetes.io/name": "@app@"}},
            "template": {
                "metadata": {
                    "creationTimestamp": None,
                    "labels": {"app.kubernetes.io/name": "@app@"},
                },
                "spec": _POD_SPEC,
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": "#observed#",
            "replicas": "#replicas#",
            "updatedReplicas": "#replicas#",
            "readyReplicas": "#replicas#",
            "availableReplicas": "#replicas#",
        },
    }
)

REPLICASET = template(
    {
        "kind": "ReplicaSet",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": "@name@",
            "namespace": "@ns@",
            "uid": "@uid@",
            "resourceVersion": "@rv@",
            "generation": 1,
            "creationTimestamp": "@created@",
            "labels": {"app.kubernetes.io/name": "@app@", "pod-template-hash": "@hash@"},
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": "@replicas@",
                "deployment.kubernetes.io/max-replicas": "@replicas@",
                "deployment.kubernetes.io/revision": "@revision@",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "@app@",
                    "uid": "@owner_uid@",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": "#replicas#",
            "selector": {
                "matchLabels": {"app.kubernetes.io/name": "@app@", "pod-template-hash": "@hash@"}
            },
            "template": {
                "metadata": {
                    "creationTimestamp": None,
                    "labels": {"app.kubernetes.io/name": "@app@", "pod-template-hash": "@hash@"},
                },
                "spec": _POD_SPEC,
            },
        },
        "status": {"replicas": 0},
    }
)

BINDING = template(
    {
        "kind": "Binding",
        "apiVersion": "v1",
        "metadata": {
            "name": "@name@",
            "namespace": "@ns@",
            "uid": "@uid@",
            "creationTimestamp": None,
        },
        "target": {"kind": "Node", "name": "@node@"},
    }
)
STATUS_SUCCESS = gojson(
    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
)

_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
#: The kubelet's node status heartbeat patch (strategic merge).
NODE_STATUS_PATCH = template(
    {
        "status": {
            "$setElementOrder/conditions": [{"type": t} for t in _CONDITIONS],
            "conditions": [{"lastHeartbeatTime": "@now@", "type": t} for t in _CONDITIONS],
        }
    }
)
POD_STATUS_PATCH = template(
    {
        "metadata": {"uid": "@uid@"},
        "status": {
            "$setElementOrder/conditions": [
                {"type": t}
                for t in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "conditions": [
                {"lastTransitionTime": "@now@", "status": "True", "type": "Ready"},
                {"lastTransitionTime": "@now@", "status": "True", "type": "ContainersReady"},
            ],
            "containerStatuses": [
                {
                    "containerID": "containerd://@cid@",
                    "image": "@image@:@tag@",
                    "imageID": "@image@@sha256:@cid@",
                    "lastState": {},
                    "name": "app",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": "@now@"}},
                }
            ],
            "hostIP": "@host_ip@",
            "hostIPs": [{"ip": "@host_ip@"}],
            "phase": "Running",
            "podIP": "@pod_ip@",
            "podIPs": [{"ip": "@pod_ip@"}],
            "startTime": "@now@",
        },
    }
)

CONFIGMAP = template(
    {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": "@name@",
            "namespace": "@ns@",
            "uid": "@uid@",
            "resourceVersion": "@rv@",
            "creationTimestamp": "2025-09-14T08:21:37Z",
            "labels": {"app.kubernetes.io/name": "@app@"},
        },
        "data": {
            "LOG_LEVEL": "@level@",
            "FEATURE_FLAGS": "checkout-v2,fast-search",
            "config.yaml": "server:\n  port: 8080\n  readTimeout: 15s\ncache:\n  ttl: 5m\n",
        },
    }
)
CONFIGMAP_PATCH = template({"data": {"LOG_LEVEL": "@level@"}})

#: kubectl apply of a Secret: the values are in data and again in last-applied-configuration.
SECRET_CREATE = template(
    {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "@name@",
            "namespace": "@ns@",
            "creationTimestamp": None,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": (
                    '{"apiVersion":"v1","data":{"password":"@b64@","username":'
                    '"YXBw"},"kind":"Secret","metadata":{"annotations":{},"name":'
                    '"@name@","namespace":"@ns@"},"type":"Opaque"}\n'
                )
            },
        },
        "data": {"password": "@b64@", "username": "YXBw"},
        "type": "Opaque",
    }
)


def _binding(kind: str, namespaced: bool) -> str:
    meta: dict[str, Any] = {"name": "@name@"}
    if namespaced:
        meta["namespace"] = "@ns@"
    meta["creationTimestamp"] = None
    return template(
        {
            "kind": kind,
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": meta,
            "subjects": [
                {
                    "kind": "@subject_kind@",
                    "apiGroup": "rbac.authorization.k8s.io",
                    "name": "@subject@",
                }
            ],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "@role@",
            },
        }
    )


ROLEBINDING = _binding("RoleBinding", True)
CLUSTERROLEBINDING = _binding("ClusterRoleBinding", False)

DELETE_OPTIONS = gojson(
    {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
)

_LEASE_META = {
    "name": "@name@",
    "namespace": "@ns@",
    "uid": "@uid@",
    "resourceVersion": "@rv@",
    "creationTimestamp": "2025-09-14T08:20:11Z",
}
_LEASE_SPEC_FIELDS = {"f:holderIdentity": {}, "f:leaseDurationSeconds": {}, "f:renewTime": {}}


def _managed(manager: str, fields: dict[str, Any]) -> list[dict[str, Any]]:
    # The demo policy leaves omitManagedFields unset (the default), so bodies keep them.
    return [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": "@api@",
            "time": "@mtime@",
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
    ]


#: A node Lease as the kubelet PUTs it back with a new renewTime.
NODE_LEASE = template(
    {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            **_LEASE_META,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "@name@", "uid": "@owner_uid@"}
            ],
            "managedFields": _managed(
                "kubelet",
                {
                    "f:metadata": {"f:ownerReferences": {".": {}, 'k:{"uid":"@owner_uid@"}': {}}},
                    "f:spec": _LEASE_SPEC_FIELDS,
                },
            ),
        },
        "spec": {"holderIdentity": "@name@", "leaseDurationSeconds": 40, "renewTime": "@renew@"},
    }
).replace("%(api)s", "coordination.k8s.io/v1")
#: A leader-election Lease renewed by its holder.
LEADER_LEASE = template(
    {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            **_LEASE_META,
            "managedFields": _managed(
                "@manager@",
                {"f:spec": {**_LEASE_SPEC_FIELDS, "f:acquireTime": {}, "f:leaseTransitions": {}}},
            ),
        },
        "spec": {
            "holderIdentity": "@holder@",
            "leaseDurationSeconds": 15,
            "acquireTime": "2025-12-29T06:41:52.118302Z",
            "renewTime": "@renew@",
            "leaseTransitions": 7,
        },
    }
).replace("%(api)s", "coordination.k8s.io/v1")

#: core/v1 Event as recorded by a kubelet or controller.
EVENT = template(
    {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "@name@", "namespace": "@ns@", "creationTimestamp": None},
        "involvedObject": {
            "kind": "@kind@",
            "namespace": "@ns@",
            "name": "@about@",
            "uid": "@uid@",
            "apiVersion": "@api@",
            "resourceVersion": "@rv@",
        },
        "reason": "@reason@",
        "message": "@message@",
        "source": {"component": "@component@", "host": "@host@"},
        "firstTimestamp": "@now@",
        "lastTimestamp": "@now@",
        "count": 1,
        "type": "Normal",
        "eventTime": None,
        "reportingComponent": "@component@",
        "reportingInstance": "@host@",
    }
)

ENDPOINTSLICE = template(
    {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": "@name@",
            "generateName": "@app@-",
            "namespace": "@ns@",
            "uid": "@uid@",
            "resourceVersion": "@rv@",
            "generation": "#generation#",
            "creationTimestamp": "2025-09-14T08:21:38Z",
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": "@app@",
            },
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": "@app@",
                    "uid": "@owner_uid@",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": "IPv4",
        "endpoints": "#endpoints#",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    }
)
ENDPOINT = template(
    {
        "addresses": ["@ip@"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "@ns@", "name": "@pod@", "uid": "@uid@"},
        "nodeName": "@node@",
    }
)

TOKEN_REQUEST = template(
    {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "audiences": ["https://kubernetes.default.svc.cluster.local"],
            "expirationSeconds": 3607,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "@pod@", "uid": "@uid@"},
        },
        "status": {"token": "", "expirationTimestamp": None},
    }
)
