"""Synthetic audit logs of a realistic demo cluster, for the demo, the tests and the benchmarks.

``generate_events(n, seed)`` yields ``n`` ``audit.k8s.io/v1`` Events serialised as kube-apiserver
writes them (one compact JSON object per line), sorted by stage time and identical for identical
arguments. The cast of actors lives in :mod:`~kubetrail.demo.cluster`, the kinds of traffic in
:mod:`~kubetrail.demo.system`, :mod:`~kubetrail.demo.workloads` and :mod:`~kubetrail.demo.people`,
and the mix and the entry points in :mod:`~kubetrail.demo.generate`. See ``docs/demo-data.md``.
"""

from kubetrail.demo.generate import (
    DEFAULT_END,
    DEFAULT_SPAN,
    generate_events,
    generate_lines,
    write_events,
)

__all__ = ["DEFAULT_END", "DEFAULT_SPAN", "generate_events", "generate_lines", "write_events"]
