"""Text and JSON rendering of lint, simulate, explain and diff results (no logic here)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from kubetrail.policy.diff import PolicyDiff
from kubetrail.policy.explain import Explanation
from kubetrail.policy.lint import LintReport
from kubetrail.policy.simulate import Simulation

EMPTY = '""'


def _idx(i: int | None) -> str:
    return "none" if i is None else str(i)


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str, ensure_ascii=False)


def lint_json(report: LintReport) -> str:
    return _dump(
        {
            "source": report.source,
            "ok": not report.errors,
            "errors": [asdict(f) for f in report.errors],
            "warnings": [asdict(f) for f in report.warnings],
        }
    )


def _where(path: str, message: str) -> str:
    return f"{path}: " if path and not message.startswith(path) else ""


def lint_text(report: LintReport) -> str:
    lines = [
        f"{report.source}: {f.severity}: {_where(f.path, f.message)}{f.message} [{f.code}]"
        for f in report.findings
    ]
    lines.append(
        f"{report.source}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )
    return "\n".join(lines)


def _pct(after: int, before: int) -> str:
    return f"{(after - before) / before * 100:+.1f}%" if before else "n/a"


def _totals(t: Any) -> dict[str, Any]:
    per = t.per_minute
    return {
        "events": t.events,
        "bytes": t.bytes,
        "events_per_minute": None if per is None else round(per, 3),
    }


def simulation_dict(sim: Simulation) -> dict[str, Any]:
    return {
        "span": {"first": sim.first, "last": sim.last},
        "before": _totals(sim.before),
        "after": _totals(sim.after),
        "reduction": round(sim.reduction, 4),
        "bytes_estimated": sim.bytes_estimated,
        "by_level": sim.by_level,
        "rules": [
            {
                "rule": r.index,
                "level": r.level,
                "events": r.events,
                "kept": r.kept,
                "dropped": r.dropped,
                "top_dropped": [
                    {"user": u, "verb": v, "resource": res, "events": n}
                    for u, v, res, n in r.top_dropped
                ],
            }
            for r in sim.rules
        ],
    }


def _per(x: float | None) -> str:
    return f"{x:.3g}/min" if x is not None else "n/a"


def simulation_text(sim: Simulation) -> str:
    b, a = sim.before, sim.after
    out = [
        f"span: {sim.first} .. {sim.last}",
        f"{'':8}{'events':>12}{'bytes':>14}{'events/min':>14}",
        f"{'before':8}{b.events:>12}{b.bytes:>14}{_per(b.per_minute):>14}",
        f"{'after':8}{a.events:>12}{a.bytes:>14}{_per(a.per_minute):>14}",
        f"{'change':8}{_pct(a.events, b.events):>12}{_pct(a.bytes, b.bytes):>14}",
        *(["(bytes estimated from a 10% sample; counts are exact)"] if sim.bytes_estimated else []),
        "",
        "events by resulting level: " + ", ".join(f"{k}={v}" for k, v in sim.by_level.items()),
        "",
        f"{'rule':>6} {'level':<16}{'events':>9}{'kept':>9}{'dropped':>9}"
        "  top dropped (user verb resource)",
    ]
    for r in sim.rules:
        name = "none" if r.index is None else str(r.index)
        top = "; ".join(
            f"{u or '-'} {v or '-'} {res or '-'} ({n})" for u, v, res, n in r.top_dropped[:3]
        )
        out.append(f"{name:>6} {r.level:<16}{r.events:>9}{r.kept:>9}{r.dropped:>9}  {top}")
    never = [str(r.index) for r in sim.rules if r.index is not None and r.events == 0]
    if never:
        out.append(f"rules never hit: {', '.join(never)}")
    return "\n".join(out)


def explain_dict(ex: Explanation) -> dict[str, Any]:
    d = ex.decision
    return {
        "request": asdict(ex.request),
        "stage": ex.stage,
        "steps": [
            {"rule": s.index, "level": s.level, "matched": s.failed is None, "failed": s.failed}
            for s in ex.steps
        ],
        "decision": {
            "level": d.level,
            "rule": d.rule,
            "omitStages": sorted(d.omit_stages),
            "omitManagedFields": d.omit_managed_fields,
            "kept": d.keeps(ex.stage),
        },
    }


def explain_text(ex: Explanation) -> str:
    r, d = ex.request, ex.decision
    who = r.user if r.user is not None else "<no user>"
    what = (
        f"{r.verb} {r.api_group or 'core'}/{r.resource}"
        f"{'/' + r.subresource if r.subresource else ''}"
        f" ns={r.namespace or EMPTY} name={r.name or EMPTY}"
        if r.is_resource
        else f"{r.verb} {r.path} (non-resource)"
    )
    out = [f"request: {who} groups={list(r.groups)} {what}"]
    for s in ex.steps:
        out.append(
            f"  rules[{s.index}] ({s.level}): "
            + ("MATCH" if s.failed is None else f"no: {s.failed}")
        )
    rule = "no rule (default None)" if d.rule is None else f"rules[{d.rule}]"
    kept = "kept" if d.keeps(ex.stage) else "dropped"
    out.append(
        f"=> level {d.level} by {rule}; omitStages={sorted(d.omit_stages)} "
        f"omitManagedFields={str(d.omit_managed_fields).lower()}; {ex.stage} event {kept}"
    )
    return "\n".join(out)


def diff_dict(diff: PolicyDiff) -> dict[str, Any]:
    return {
        "events": diff.total,
        "changed": diff.changed,
        "changes": [
            {
                "old": c.old,
                "new": c.new,
                "events": c.events,
                "rules": [{"old_rule": o, "new_rule": n, "events": k} for o, n, k in c.rules],
                "top": [
                    {"user": u, "verb": v, "resource": res, "events": n} for u, v, res, n in c.top
                ],
            }
            for c in diff.changes
        ],
    }


def diff_text(diff: PolicyDiff) -> str:
    out = [f"{diff.changed} of {diff.total} events change outcome"]
    for c in diff.changes:
        rules = ", ".join(f"{_idx(o)}->{_idx(n)} ({k})" for o, n, k in c.rules[:4])
        out.append(f"{c.old} -> {c.new}: {c.events} events (old rule -> new rule: {rules})")
        out.extend(f"    {u or '-'} {v or '-'} {res or '-'}: {n}" for u, v, res, n in c.top)
    return "\n".join(out)
