"""Alert messages: placeholders filled from the event, missing or empty values shown as ``-``."""

from __future__ import annotations

from kubetrail.detect.engine import render


def test_missing_and_empty_values_read_as_a_dash() -> None:
    row = {"verb": "create", "request_uri": "/api/v1/namespaces", "decision_reason": ""}
    text = render("anonymous {verb} {uri} was allowed ({reason})", row)
    assert text == "anonymous create /api/v1/namespaces was allowed (-)"
    assert render("{user} did it", {}) == "- did it"
