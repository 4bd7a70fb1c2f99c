"""The ``kubetrail`` command: a thin layer that parses arguments, calls the library and maps
errors to exit codes (2 for usage errors; other codes as each command documents).
"""

from __future__ import annotations

import click

from .. import __version__
from ..nopandas import refuse_pandas
from .alerts import alerts
from .certs import certs
from .collect import collect
from .demo import demo
from .ingest import export, ingest, stats
from .migrate import migrate
from .policy import policy
from .query import query
from .report import report
from .retention import retention
from .rules import rules
from .serve import serve
from .store import store
from .verify import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kubetrail")
def main() -> None:
    """kubetrail: collect, search, alert on and keep Kubernetes API-server audit logs."""


for command in (
    serve,
    collect,
    ingest,
    export,
    stats,
    report,
    query,
    policy,
    certs,
    demo,
    store,
    migrate,
):
    main.add_command(command)
for command in (retention, verify, rules, alerts):  # issues 9 and 6
    main.add_command(command)


def run() -> None:
    """The ``kubetrail`` program (console script and ``python -m kubetrail``): :func:`main` in a
    process that refuses pandas, which kubetrail never uses (:mod:`kubetrail.nopandas`)."""
    refuse_pandas()
    main()
