"""Derived fields: actor kind, service account, exec command, stage finality."""

from __future__ import annotations

import pytest

from kubetrail.model.derive import actor_kind, exec_command, is_final, service_account


@pytest.mark.parametrize(
    ("username", "kind"),
    [
        ("alice@example.com", "human"),
        ("kubernetes-admin", "human"),
        ("system:serviceaccount:ci:jenkins", "serviceaccount"),
        ("system:node:worker-1", "node"),
        ("system:kube-scheduler", "system"),
        ("system:apiserver", "system"),
        ("system:anonymous", "anonymous"),
        ("", "anonymous"),
        (None, "anonymous"),
    ],
)
def test_actor_kind(username, kind):
    assert actor_kind(username) == kind


def test_service_account():
    assert service_account("system:serviceaccount:ci:jenkins") == ("ci", "jenkins")
    assert service_account("system:serviceaccount:broken") == (None, None)
    assert service_account("alice") == (None, None)


def test_exec_command_is_decoded_and_quoted():
    uri = (
        "/api/v1/namespaces/prod/pods/web-0/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fshadow"
        "&container=app&stdin=true&tty=true"
    )
    assert exec_command(uri) == "sh -c 'cat /etc/shadow'"
    assert exec_command("/api/v1/namespaces/p/pods/x/exec?container=a") is None
    assert exec_command("/api/v1/namespaces/p/pods/x/exec?command=") == "''"


@pytest.mark.parametrize(
    ("stage", "code", "user", "final"),
    [
        ("ResponseComplete", 200, "a", True),
        ("Panic", 500, "a", True),
        ("RequestReceived", None, "a", False),
        ("ResponseStarted", 101, "a", False),
        ("ResponseStarted", 401, None, True),
        ("ResponseStarted", 400, None, True),
    ],
)
def test_is_final(stage, code, user, final):
    assert is_final(stage, code, user) is final
