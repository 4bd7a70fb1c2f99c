"""``kubetrail policy``: lint, simulate, explain, diff and generate audit policies.

Thin layer: parse arguments, call :mod:`kubetrail.policy`, render, map errors to exit codes
(1 = the policy is refused / has unknown fields, 2 = usage errors).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from kubetrail.errors import KubetrailError, PolicyError, UsageError
from kubetrail.policy import report
from kubetrail.policy.loader import check_policy, parse_policy
from kubetrail.policy.model import Policy

_FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
_EVENTS = click.option(
    "--events",
    "events",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Audit event file (JSON lines, EventList, .gz); repeat for several.",
)
_DB = click.option(
    "--db", "db", help="kubetrail store to run on: a DuckDB file or a clickhouse:// URL."
)
_SINCE = click.option(
    "--since", default=None, help="With --db: only the last duration (30m, 24h, 7d)."
)


def _load(path: str) -> Policy:
    """Load a policy as kube-apiserver would (unknown fields dropped); exit 1 if refused."""
    try:
        return check_policy(parse_policy(Path(path).read_bytes(), path))
    except PolicyError as exc:
        raise click.ClickException(
            f"{path}: kube-apiserver would refuse this policy: {exc}"
        ) from exc


def _events(files: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    from kubetrail.model import load_events

    for f in files:
        yield from load_events(f)


@contextmanager
def _store(path: str) -> Iterator[Any]:
    from kubetrail.store.location import is_url, open_location

    if not is_url(path) and not Path(path).is_file():
        raise click.UsageError(f"no store at '{path}'")
    store = open_location(path, read_only=True)
    try:
        yield store
    finally:
        store.close()


def _source(events: tuple[str, ...], db: str | None, since: str | None = None) -> None:
    if bool(events) == bool(db):
        raise click.UsageError("give either --events FILE (repeatable) or --db PATH")
    if since is not None:
        if not db:
            raise click.UsageError("--since needs --db")
        from kubetrail.policy.dbsim import parse_since

        try:
            parse_since(since)
        except UsageError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from exc


@click.group("policy")
def policy() -> None:
    """Lint, simulate, explain, diff and generate audit policies."""


@policy.command("lint")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False))
@_FORMAT
def lint_cmd(policy_file: str, fmt: str) -> None:
    """Report what kube-apiserver would refuse (exit 1) and likely mistakes (warnings)."""
    from kubetrail.policy.lint import lint_text

    rep = lint_text(Path(policy_file).read_bytes(), policy_file)
    click.echo(report.lint_json(rep) if fmt == "json" else report.lint_text(rep))
    raise SystemExit(rep.exit_code)


@policy.command("simulate")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False))
@_EVENTS
@_DB
@_SINCE
@_FORMAT
@click.option("--per-event", is_flag=True, help="One result per input event instead of totals.")
@click.option(
    "--top", default=5, show_default=True, help="Dropped (user, verb, resource) groups per rule."
)
def simulate_cmd(
    policy_file: str,
    events: tuple[str, ...],
    db: str | None,
    since: str | None,
    fmt: str,
    per_event: bool,
    top: int,
) -> None:
    """Show what POLICY keeps and drops on recorded traffic."""
    from kubetrail.policy import dbsim, simulate
    from kubetrail.policy.evaluate import decision_for

    _source(events, db, since)
    pol = _load(policy_file)
    try:
        if per_event:
            if db:
                with _store(db) as store:
                    rows = [
                        {
                            "auditID": a,
                            "stage": s,
                            "level": decision_for(pol, i).level,
                            "rule": i,
                            "kept": decision_for(pol, i).keeps(s),
                        }
                        for a, s, i in dbsim.per_event_store(store, pol, since)
                    ]
            else:
                rows = list(simulate.per_event(pol, _events(events)))
            for row in rows:
                if fmt == "json":
                    click.echo(json.dumps(row))
                else:
                    rule = "-" if row["rule"] is None else row["rule"]
                    click.echo(
                        f"{row['auditID']} {row['stage']} {row['level']} rule={rule} "
                        + ("kept" if row["kept"] else "dropped")
                    )
            return
        if db:
            with _store(db) as store:
                sim = simulate.summarize(pol, dbsim.tally_store(store, pol, since), top)
        else:
            sim = simulate.simulate_events(pol, _events(events), top)
    except KubetrailError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(report.simulation_dict(sim), indent=2, default=str)
        if fmt == "json"
        else report.simulation_text(sim)
    )


@policy.command("explain")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("event_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--audit-id", default=None, help="With --db: the auditID to explain.")
@_DB
@_FORMAT
def explain_cmd(
    policy_file: str, event_file: str | None, audit_id: str | None, db: str | None, fmt: str
) -> None:
    """Which rule matches an event, and the first field each earlier rule failed on."""
    from kubetrail.policy import dbsim
    from kubetrail.policy.explain import explain

    by_db = audit_id is not None and db is not None
    if (event_file is None) != by_db or (event_file and (audit_id or db)):
        raise click.UsageError("give EVENT_FILE, or --audit-id ID with --db PATH")
    pol = _load(policy_file)
    if db:
        with _store(db) as store:
            evs = dbsim.fetch_event(store, audit_id or "")
        if not evs:
            raise click.ClickException(f"no stored event with auditID {audit_id}")
    else:
        evs = list(_events((event_file or "",)))
    results = [explain(pol, e) for e in evs]
    if fmt == "json":
        click.echo(json.dumps([report.explain_dict(r) for r in results], indent=2, default=str))
    else:
        for e, r in zip(evs, results, strict=True):
            click.echo(f"{e.get('auditID')} {e.get('stage')}")
            click.echo(report.explain_text(r))


@policy.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@_EVENTS
@_DB
@_SINCE
@_FORMAT
@click.option("--top", default=5, show_default=True)
def diff_cmd(
    old: str,
    new: str,
    events: tuple[str, ...],
    db: str | None,
    since: str | None,
    fmt: str,
    top: int,
) -> None:
    """Events whose level (or kept/dropped) changes from OLD to NEW, grouped."""
    from kubetrail.policy import dbsim, diff

    _source(events, db, since)
    po, pn = _load(old), _load(new)
    if db:
        with _store(db) as store:
            tally = dbsim.pair_tally_store(store, po, pn, since)
    else:
        tally = diff.pair_tally_events(po, pn, _events(events))
    result = diff.diff_tally(po, pn, tally, top)
    click.echo(
        json.dumps(report.diff_dict(result), indent=2)
        if fmt == "json"
        else report.diff_text(result)
    )


@policy.command("generate")
@_EVENTS
@_DB
@_SINCE
@click.option(
    "--min-share",
    default=0.01,
    show_default=True,
    help="Drop a read-only group only if it is at least this share of all events.",
)
def generate_cmd(
    events: tuple[str, ...], db: str | None, since: str | None, min_share: float
) -> None:
    """Propose a policy from observed traffic and print its simulated reduction."""
    from kubetrail.policy import dbsim, generate, simulate

    _source(events, db, since)
    if db:
        with _store(db) as store:
            pol = generate.propose_counts(dbsim.request_counts_store(store, since), min_share)
            sim = simulate.summarize(pol, dbsim.tally_store(store, pol, since))
    else:
        evs = list(_events(events))
        pol = generate.propose(evs, min_share=min_share)
        sim = simulate.simulate_events(pol, evs)
    b, a = sim.before, sim.after
    click.echo(f"# Proposed by kubetrail from {b.events} observed events. Simulated on them:")
    click.echo(
        f"#   events {b.events} -> {a.events} ({sim.reduction * 100:.1f}% fewer), "
        f"bytes {b.bytes} -> {a.bytes}"
    )
    click.echo(generate.to_yaml(pol, generate.describe(pol)), nl=False)
