"""Derived columns: actor kind, service account, exec command, stage finality, latency."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from kubetrail.model.derive import (
    actor_kind,
    commands,
    exec_command,
    is_final,
    latency_ms,
    service_account,
)

USERS = [
    ("alice@example.com", "human"),
    ("kubernetes-admin", "human"),
    ("system:serviceaccount:ci:jenkins", "serviceaccount"),
    ("system:node:worker-1", "node"),
    ("system:kube-scheduler", "system"),
    ("system:apiserver", "system"),
    ("system:anonymous", "anonymous"),
    (None, "anonymous"),
]


def test_actor_kind():
    names = pa.array([u for u, _ in USERS], pa.string())
    assert actor_kind(names).to_pylist() == [kind for _, kind in USERS]


def test_service_account():
    names = pa.array(
        ["system:serviceaccount:ci:jenkins", "system:serviceaccount:broken", "a", None]
    )
    namespace, name = service_account(names)
    assert namespace.to_pylist() == ["ci", None, None, None]
    assert name.to_pylist() == ["jenkins", None, None, None]


def test_exec_command_is_decoded_and_quoted():
    uri = (
        "/api/v1/namespaces/prod/pods/web-0/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fshadow"
        "&container=app&stdin=true&tty=true"
    )
    assert exec_command(uri) == "sh -c 'cat /etc/shadow'"
    assert exec_command("/api/v1/namespaces/p/pods/x/exec?container=a") is None
    assert exec_command("/api/v1/namespaces/p/pods/x/exec?command=") == "''"
    uris = pa.array([uri, uri, "/api/v1/namespaces/p/pods/x/attach?container=a"])
    subs = pa.array(["exec", None, "attach"])
    assert commands(uris, subs).to_pylist() == ["sh -c 'cat /etc/shadow'", None, None]


@pytest.mark.parametrize(
    ("stage", "code", "user", "final"),
    [
        ("ResponseComplete", 200, "a", True),
        ("Panic", 500, "a", True),
        ("RequestReceived", None, "a", False),
        ("ResponseStarted", 101, "a", False),
        ("ResponseStarted", 403, "a", False),
        ("ResponseStarted", 401, None, True),
        ("ResponseStarted", 400, None, True),
    ],
)
def test_is_final(stage, code, user, final):
    result = is_final(
        pa.array([stage]), pa.array([code], pa.int32()), pa.array([user], pa.string())
    )
    assert result.to_pylist() == [final]


def test_latency_ms():
    start = pa.array([datetime(2024, 1, 1, 0, 0, 0)], pa.timestamp("us"))
    end = pa.array([datetime(2024, 1, 1, 0, 0, 1, 500)], pa.timestamp("us"))
    assert latency_ms(start, end).to_pylist() == [1000.5]
