"""The demo-cluster generator: format, determinism, ordering, stages and traffic mix."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from kubetrail.cli.demo import demo
from kubetrail.demo import DEFAULT_END, generate_events, write_events

N = 20_000
KEY_ORDER = [
    "kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user",
    "impersonatedUser", "sourceIPs", "userAgent", "objectRef", "responseStatus", "requestObject",
    "responseObject", "requestReceivedTimestamp", "stageTimestamp", "annotations",
]  # fmt: skip
REQUIRED = ("auditID", "stage", "verb", "requestURI", "requestReceivedTimestamp", "stageTimestamp",
            "level", "user")  # fmt: skip
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
LONG_RUNNING = {"exec", "attach", "portforward", "log", "proxy"}


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return list(generate_events(N, seed=7))


@pytest.fixture(scope="module")
def events(lines: list[bytes]) -> list[dict]:
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def requests(events: list[dict]) -> list[dict]:
    """The final event of every request (ResponseComplete, or the lone 401 ResponseStarted)."""
    return [e for e in events if e["stage"] == "ResponseComplete" or not e["user"]]


def _ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _resource(e: dict) -> str | None:
    return e.get("objectRef", {}).get("resource")


def test_same_arguments_same_bytes_and_seed_matters() -> None:
    first = b"\n".join(generate_events(3_000, seed=42))
    assert first == b"\n".join(generate_events(3_000, seed=42))
    assert first != b"\n".join(generate_events(3_000, seed=43))


def test_write_events_matches_generate_events() -> None:
    out = BytesIO()
    written = write_events(out, 5_000, seed=3, chunk=700)
    expected = b"".join(line + b"\n" for line in generate_events(5_000, seed=3))
    assert out.getvalue() == expected
    assert written == len(expected)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 17, 100, 1_001])
def test_exactly_n_events(n: int) -> None:
    assert sum(1 for _ in generate_events(n, seed=n)) == n


def test_every_line_is_a_compact_v1_event_in_api_server_key_order(lines: list[bytes]) -> None:
    for line in lines:
        assert b"\n" not in line
        assert not re.search(rb"[<>&]", line), "Go escapes <, > and & in JSON"
        event = json.loads(line)
        assert event["kind"] == "Event"
        assert event["apiVersion"] == "audit.k8s.io/v1"
        for key in REQUIRED:
            assert key in event
        keys = list(event)
        assert keys == [k for k in KEY_ORDER if k in event]
        assert line == json.dumps(
            event, separators=(",", ":"), ensure_ascii=False
        ).encode().replace(b"&", b"\\u0026")
        assert UUID4.match(event["auditID"])
        assert MICROTIME.match(event["requestReceivedTimestamp"])
        assert MICROTIME.match(event["stageTimestamp"])
        if "responseStatus" in event:
            assert next(iter(event["responseStatus"])) == "metadata"
        if "annotations" in event:
            assert list(event["annotations"]) == sorted(event["annotations"])


def test_timestamps_cover_the_span_in_order() -> None:
    end = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    span = timedelta(hours=2)
    stamps = [json.loads(line)["stageTimestamp"] for line in generate_events(4_000, 5, end, span)]
    assert stamps == sorted(stamps)
    assert _ts(stamps[0]) >= end - span
    assert _ts(stamps[-1]) <= end
    assert _ts(stamps[-1]) - _ts(stamps[0]) > span * 0.9


def test_default_window_and_ordering(events: list[dict]) -> None:
    start = DEFAULT_END - timedelta(hours=24)
    previous = ""
    for e in events:
        assert previous <= e["stageTimestamp"]
        previous = e["stageTimestamp"]
        assert (
            start <= _ts(e["requestReceivedTimestamp"]) <= _ts(e["stageTimestamp"]) <= DEFAULT_END
        )


def test_stages_are_consistent_per_request(events: list[dict]) -> None:
    by_id: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_id[e["auditID"]].append(e)
    for stages in by_id.values():
        names = [e["stage"] for e in stages]
        first = stages[0]
        if not first["user"]:  # failed authentication: one ResponseStarted event, 401
            assert names == ["ResponseStarted"]
            assert first["responseStatus"]["code"] == 401
            assert "annotations" not in first
            continue
        sub = first.get("objectRef", {}).get("subresource")
        if first["verb"] == "watch" or sub in LONG_RUNNING:
            assert names == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
        else:
            assert names == ["RequestReceived", "ResponseComplete"]
        assert "responseStatus" not in first and "annotations" not in first
        assert "requestObject" not in first and "impersonatedUser" not in first
        assert len({(e["requestURI"], e["verb"], e["level"], e["requestReceivedTimestamp"])
                    for e in stages}) == 1  # fmt: skip
        for later in stages[1:]:
            assert later["annotations"]["authorization.k8s.io/decision"] in ("allow", "forbid")
            assert "authorization.k8s.io/reason" in later["annotations"]


def test_leases_and_watches_dominate(events: list[dict]) -> None:
    leases = sum(1 for e in events if _resource(e) == "leases")
    watches = sum(1 for e in events if e["verb"] == "watch")
    assert leases > 0.35 * len(events)
    assert watches > 0.08 * len(events)
    assert leases + watches > 0.6 * len(events)


def test_denied_share(requests: list[dict]) -> None:
    denied = [r for r in requests if r["responseStatus"]["code"] in (401, 403)]
    assert 0.01 <= len(denied) / len(requests) <= 0.05
    forbidden = [r for r in requests if r["responseStatus"]["code"] == 403]
    assert all(r["annotations"]["authorization.k8s.io/decision"] == "forbid" for r in forbidden)
    assert any(
        r["annotations"]["authorization.k8s.io/reason"].startswith("RBAC: ") for r in forbidden
    )
    assert {r["sourceIPs"][0] for r in requests if r["responseStatus"]["code"] == 401} == {
        "198.51.100.77"
    }


def test_people_read_secrets_and_exec(requests: list[dict]) -> None:
    humans = [r for r in requests if not r["user"].get("username", "system:").startswith("system:")]
    assert any(_resource(r) == "secrets" and r["verb"] in ("get", "list") for r in humans)
    execs = [r for r in humans if r.get("objectRef", {}).get("subresource") == "exec"]
    assert execs
    for r in execs:
        query = parse_qs(urlsplit(r["requestURI"]).query)
        assert query["command"] and query["container"] == ["app"]
    assert any(parse_qs(urlsplit(r["requestURI"]).query)["command"] == ["sh", "-c", "ls -la"]
               for r in execs) or len(execs) < 5  # fmt: skip


def test_rbac_writes_rollouts_and_bodies(requests: list[dict]) -> None:
    rbac = [
        r for r in requests if r.get("objectRef", {}).get("apiGroup") == "rbac.authorization.k8s.io"
    ]
    assert any(r["verb"] == "create" for r in rbac)
    assert any(r["verb"] == "patch" and _resource(r) == "deployments" and "requestObject" in r
               for r in requests)  # fmt: skip
    assert any(r["verb"] == "create" and _resource(r) == "pods" and "responseObject" in r
               for r in requests)  # fmt: skip
    secret_creates = [r for r in requests if r["verb"] == "create" and _resource(r) == "secrets"]
    assert all(r["requestObject"]["data"]["password"] for r in secret_creates)
    for r in requests:
        if r["level"] == "Metadata":
            assert "requestObject" not in r and "responseObject" not in r


def test_average_size_is_about_1_2_kb(lines: list[bytes]) -> None:
    average = sum(len(line) + 1 for line in lines) / len(lines)
    assert 900 <= average <= 1_500


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        next(generate_events(0))
    with pytest.raises(ValueError):
        next(generate_events(10, span=timedelta(0)))


def test_cli_writes_n_lines() -> None:
    result = CliRunner().invoke(demo, ["generate", "--events", "100", "--seed", "3"])
    assert result.exit_code == 0, result.output
    out = result.stdout_bytes.splitlines()
    assert len(out) == 100
    assert out == list(generate_events(100, seed=3))


def test_cli_end_span_and_output(tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    args = [
        "generate",
        "-n",
        "50",
        "--end",
        "2025-03-01T10:00:00Z",
        "--span",
        "1h30m",
        "-o",
        str(target),
    ]
    result = CliRunner().invoke(demo, args)
    assert result.exit_code == 0, result.output
    stamps = [json.loads(line)["stageTimestamp"] for line in target.read_text().splitlines()]
    assert len(stamps) == 50
    assert "2025-03-01T08:30:00" <= stamps[0] <= stamps[-1] <= "2025-03-01T10:00:00.000000Z"
    assert CliRunner().invoke(demo, ["generate", "-n", "5", "--end", "now"]).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--events", "0"],
        ["--events", "-3"],
        [],
        ["--events", "10", "--span", "soon"],
        ["--events", "10", "--end", "yesterday"],
        ["--events", "10", "--end", "2025-01-01T00:00:00"],
    ],
)
def test_cli_usage_errors_exit_2(args: list[str]) -> None:
    assert CliRunner().invoke(demo, ["generate", *args]).exit_code == 2
