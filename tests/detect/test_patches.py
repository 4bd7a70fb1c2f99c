"""JSON patches as the sparse objects they write."""

from __future__ import annotations

from kubetrail.detect.patches import json_patch_object


def test_add_and_replace_build_the_object() -> None:
    ops = [
        {"op": "add", "path": "/spec/containers/0/securityContext/privileged", "value": True},
        {"op": "replace", "path": "/spec/hostPID", "value": True},
        {"op": "add", "path": "/spec/volumes/-", "value": {"hostPath": {"path": "/"}}},
        {"op": "add", "path": "/metadata/annotations/a~1b~0c", "value": "x"},
    ]
    assert json_patch_object(ops) == {
        "spec": {
            "containers": [{"securityContext": {"privileged": True}}],
            "hostPID": True,
            "volumes": [{"hostPath": {"path": "/"}}],
        },
        "metadata": {"annotations": {"a/b~c": "x"}},
    }


def test_other_operations_and_junk_are_ignored() -> None:
    ops = [
        {"op": "remove", "path": "/spec/hostPID"},
        {"op": "test", "path": "/spec", "value": {}},
        {"op": "add", "path": "no-slash", "value": 1},
        {"op": "add", "path": 3, "value": 1},
        "not an op",
        {"op": "add", "path": "/spec/containers/1/image", "value": "evil"},
    ]
    assert json_patch_object(ops) == {"spec": {"containers": [None, {"image": "evil"}]}}
