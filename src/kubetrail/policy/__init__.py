"""Audit Policy: load and validate, evaluate exactly as kube-apiserver does, apply a level to an
event, lint, simulate on recorded traffic, compile to SQL, explain, diff and generate.

The package is compiler-shaped::

    loader.py   YAML/JSON -> model.Policy (strict findings + lenient result, like kube-apiserver)
    validate.py model.Policy -> field errors with kube-apiserver's paths and wording
    request.py  audit Event dict -> request attributes (RequestInfo rules)
    evaluate.py (Policy, Request) -> Decision          the reference evaluator
    compile.py  Policy -> one SQL CASE over the store's columns (sqlglot)
    apply.py    (Event, Decision) -> the event kube-apiserver would have written, or None
    lint.py, simulate.py, explain.py, diff.py, generate.py, report.py
"""

from __future__ import annotations

from kubetrail.policy.apply import apply_decision, apply_level
from kubetrail.policy.errors import (
    FieldError,
    PolicyDecodeError,
    PolicyValidationError,
)
from kubetrail.policy.evaluate import Decision, evaluate, evaluate_event
from kubetrail.policy.loader import LoadResult, load_policy, load_policy_file, parse_policy
from kubetrail.policy.model import GroupResources, Policy, PolicyRule
from kubetrail.policy.request import Request, request_from_event, request_from_uri

__all__ = [
    "Decision",
    "FieldError",
    "GroupResources",
    "LoadResult",
    "Policy",
    "PolicyDecodeError",
    "PolicyRule",
    "PolicyValidationError",
    "Request",
    "apply_decision",
    "apply_level",
    "evaluate",
    "evaluate_event",
    "load_policy",
    "load_policy_file",
    "parse_policy",
    "request_from_event",
    "request_from_uri",
]
