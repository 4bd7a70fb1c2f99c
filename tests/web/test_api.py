"""The JSON API and the login sessions, against a real server with demo data."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live import assert_error
from ui_live import ADMIN, ADMIN_TOKEN, VIEWER, VIEWER_TOKEN, UIServer, ui_server

from kubetrail.web.api import API_ROUTES
from kubetrail.web.session import LOGIN_COOKIE, SESSION_COOKIE

ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VIEWER_AUTH = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
POLICY = b"""apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: Metadata
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    with ui_server(tmp_path_factory.mktemp("api"), secure=False) as server:
        yield server


_CLIENTS: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def _client(live: UIServer) -> httpx.Client:
    client = httpx.Client(base_url=live.url, follow_redirects=False, timeout=30)
    _CLIENTS.append(client)
    return client


def _login(live: UIServer, user: str, password: str) -> httpx.Client:
    client = _client(live)
    page = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = client.post(
        "/ui/login", data={"user": user, "password": password, "csrf": csrf.group(1)}
    )
    assert answer.status_code == 303, answer.text
    return client


def _session_csrf(client: httpx.Client) -> str:
    page = client.get("/ui/alerts")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def _concrete(path: str, live: UIServer) -> str:
    return path.replace("{audit_id}", live.audit_id).replace("{alert_id}", live.alert_id)


def test_every_api_route_needs_a_session_or_token(live: UIServer) -> None:
    for route in API_ROUTES:
        for method in route.methods - {"HEAD"}:
            answer = httpx.request(method, live.url + _concrete(route.path, live), timeout=30)
            assert_error(answer, 401)
            bad = httpx.request(
                method,
                live.url + _concrete(route.path, live),
                timeout=30,
                headers={"Authorization": "Bearer nope"},
            )
            assert_error(bad, 401)


def test_openapi_describes_every_api_route(live: UIServer) -> None:
    doc = httpx.get(live.url + "/api/openapi.json", headers=VIEWER_AUTH, timeout=30).json()
    described = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    served = {(r.path, m) for r in API_ROUTES for m in r.methods - {"HEAD"}}
    assert served == described


def test_ingest_token_is_refused(live: UIServer) -> None:
    answer = httpx.get(
        live.url + "/api/query",
        params={"q": "exec"},
        timeout=30,
        headers={"Authorization": "Bearer prod-token-0123456789"},
    )
    assert_error(answer, 403)


def test_query_gives_the_cli_json(live: UIServer) -> None:
    answer = httpx.get(
        live.url + "/api/query",
        headers=VIEWER_AUTH,
        timeout=30,
        params={"q": "| stats count() by verb", "since": "24h", "cluster": "demo"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"columns", "rows", "elapsed_ms"}
    assert body["columns"] == ["verb", "count"]
    assert sum(n for _, n in body["rows"]) > 1000
    other = httpx.get(
        live.url + "/api/query",
        headers=VIEWER_AUTH,
        timeout=30,
        params={"q": "| stats count() by verb", "cluster": "nowhere"},
    ).json()
    assert other["rows"] == []


def test_query_syntax_error_points_at_the_column(live: UIServer) -> None:
    answer = httpx.get(
        live.url + "/api/query", params={"q": "verb=get usr=bob"}, headers=VIEWER_AUTH, timeout=30
    )
    body = assert_error(answer, 400)
    assert body["errors"][0]["col"] == 10 and "did you mean 'user'" in body["error"]
    assert_error(httpx.get(live.url + "/api/query", headers=VIEWER_AUTH, timeout=30), 400)
    bad_time = httpx.get(
        live.url + "/api/query",
        params={"q": "exec", "from": "yesterday"},
        headers=VIEWER_AUTH,
        timeout=30,
    )
    assert_error(bad_time, 400)


def test_query_exports_csv_and_json_lines(live: UIServer) -> None:
    params = {"q": "code=403 | top user", "range": "24h"}
    csv_text = httpx.get(
        live.url + "/api/query", params={**params, "format": "csv"}, headers=VIEWER_AUTH, timeout=30
    )
    assert csv_text.headers["content-type"].startswith("text/csv")
    assert csv_text.text.splitlines()[0] == "user,count,percent"
    lines = httpx.get(
        live.url + "/api/query",
        params={**params, "format": "ndjson"},
        headers=VIEWER_AUTH,
        timeout=30,
    ).text.splitlines()
    assert lines and set(json.loads(lines[0])) == {"user", "count", "percent"}
    assert len(lines) == len(csv_text.text.splitlines()) - 1


def test_event_by_audit_id(live: UIServer) -> None:
    body = httpx.get(
        f"{live.url}/api/events/{live.audit_id}", headers=VIEWER_AUTH, timeout=30
    ).json()
    assert body["auditID"] == live.audit_id and body["cluster"] == "demo"
    assert body["stages"][-1]["responseStatus"]["code"] == 403
    assert body["around"]["columns"][-1] == "id"
    assert all(row[-1] != live.audit_id for row in body["around"]["rows"])
    assert_error(httpx.get(live.url + "/api/events/nope", headers=VIEWER_AUTH, timeout=30), 404)


def test_overview_rows_link_to_their_search(live: UIServer) -> None:
    body = httpx.get(live.url + "/api/overview", headers=VIEWER_AUTH, timeout=30).json()
    top = body["panels"]["users"]["rows"][0]
    again = httpx.get(
        live.url + "/api/query",
        headers=VIEWER_AUTH,
        timeout=30,
        params={"q": top["search"] + " | stats count()", "range": "24h"},
    ).json()
    assert again["rows"][0][0] == top["count"]
    by_label = {s["label"]: s for s in body["status_codes"]}
    assert by_label["403"]["search"] == "code=403" and by_label["403"]["count"] > 0


def test_policy_simulation(live: UIServer) -> None:
    answer = httpx.post(
        live.url + "/api/policy/simulate",
        content=POLICY,
        headers=VIEWER_AUTH,
        params={"since": "24h"},
        timeout=60,
    )
    body = answer.json()
    assert body["before"]["events"] > body["after"]["events"] > 0
    assert body["rules"][0]["level"] == "None" and body["rules"][0]["dropped"] > 0
    bad = httpx.post(
        live.url + "/api/policy/simulate",
        content=b"kind: Policy\nrules: 3\n",
        headers=VIEWER_AUTH,
        timeout=30,
    )
    assert_error(bad, 400)


def test_viewer_cannot_change_alerts_admin_can(live: UIServer) -> None:
    url = f"{live.url}/api/alerts/{live.alert_id}/status"
    refused = httpx.post(url, json={"status": "acknowledged"}, headers=VIEWER_AUTH, timeout=30)
    assert_error(refused, 403)
    alerts = httpx.get(live.url + "/api/alerts", headers=VIEWER_AUTH, timeout=30).json()
    assert [a["status"] for a in alerts["alerts"] if a["id"] == live.alert_id] == ["open"]
    assert_error(httpx.post(url, json={"status": "gone"}, headers=ADMIN_AUTH, timeout=30), 400)
    done = httpx.post(url, json={"status": "resolved"}, headers=ADMIN_AUTH, timeout=30).json()
    assert done["status"] == "resolved" and done["resolved_by"] == "admin"
    reopened = httpx.post(url, json={"status": "open"}, headers=ADMIN_AUTH, timeout=30).json()
    assert reopened["status"] == "open"


def test_login_sets_an_http_only_same_site_cookie(live: UIServer) -> None:
    client = _client(live)
    page = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/ui/login", data={"user": ADMIN[0], "password": ADMIN[1], "csrf": csrf})
    assert answer.status_code == 303
    header = next(
        v
        for k, v in answer.headers.multi_items()
        if k == "set-cookie" and v.startswith(SESSION_COOKIE)
    )
    flags = {part.strip().lower() for part in header.split(";")}
    assert {"httponly", "samesite=lax", "path=/"} <= flags  # Secure: see the browser test
    assert client.get("/api/me").json() == {"name": "ada", "role": "admin", "via": "session"}


def test_login_needs_its_csrf_token_and_the_right_password(live: UIServer) -> None:
    client = _client(live)
    client.get("/ui/login")
    assert LOGIN_COOKIE in client.cookies
    no_csrf = client.post("/ui/login", data={"user": ADMIN[0], "password": ADMIN[1]})
    assert no_csrf.status_code == 403 and SESSION_COOKIE not in client.cookies
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text).group(1)  # type: ignore[union-attr]
    wrong = client.post("/ui/login", data={"user": ADMIN[0], "password": "x", "csrf": csrf})
    assert wrong.status_code == 401 and SESSION_COOKIE not in client.cookies
    admin = client.post(
        "/ui/login",
        data={"user": "admin", "password": ADMIN_TOKEN, "csrf": csrf},
        follow_redirects=False,
    )
    assert admin.status_code == 303 and admin.headers["location"] == "/ui/overview"


def test_session_writes_need_the_csrf_token(live: UIServer) -> None:
    client = _login(live, *ADMIN)
    url = f"/api/alerts/{live.alert_id}/status"
    assert_error(client.post(url, json={"status": "acknowledged"}), 403)
    token = _session_csrf(client)
    ok = client.post(url, json={"status": "acknowledged"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200 and ok.json()["acknowledged_by"] == "ada"
    form = client.post(f"/ui/alerts/{live.alert_id}/status", data={"status": "open"})
    assert form.status_code == 403
    form = client.post(f"/ui/alerts/{live.alert_id}/status", data={"status": "open", "csrf": token})
    assert form.status_code == 303


def test_viewer_session_is_refused_admin_form(live: UIServer) -> None:
    client = _login(live, *VIEWER)
    token = _session_csrf(client)
    refused = client.post(
        f"/ui/alerts/{live.alert_id}/status", data={"status": "resolved", "csrf": token}
    )
    assert refused.status_code == 403 and "admin role" in refused.text


def test_logout_ends_the_session_for_good(live: UIServer) -> None:
    client = _login(live, *VIEWER)
    cookie = client.cookies[SESSION_COOKIE]
    assert client.get("/api/me").status_code == 200
    token = _session_csrf(client)
    assert client.post("/ui/logout", data={"csrf": token}).status_code == 303
    replay = httpx.get(live.url + "/api/me", cookies={SESSION_COOKIE: cookie}, timeout=30)
    assert_error(replay, 401)
    page = httpx.get(live.url + "/ui/overview", cookies={SESSION_COOKIE: cookie}, timeout=30)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")


def test_login_redirect_stays_on_this_site(live: UIServer, tmp_path: Path) -> None:
    client = _client(live)
    page = client.get("/ui/login", params={"next": "//evil.example/"})
    assert "next=%2Fui%2Foverview" in page.text or "next=/ui/overview" in page.text


def test_query_limit(live: UIServer) -> None:
    url = live.url + "/api/query"
    five = httpx.get(
        url, params={"q": "| stats count() by id", "limit": "5"}, headers=VIEWER_AUTH, timeout=30
    ).json()
    assert len(five["rows"]) == 5
    listing = httpx.get(url, params={"q": "exists(user)"}, headers=VIEWER_AUTH, timeout=30)
    assert len(listing.json()["rows"]) == 100
    for bad in ("0", "10001", "x"):
        answer = httpx.get(url, params={"q": "exec", "limit": bad}, headers=VIEWER_AUTH, timeout=30)
        assert_error(answer, 400)


def test_policy_page_takes_an_upload(live: UIServer) -> None:
    client = _login(live, *VIEWER)
    token = _session_csrf(client)
    page = client.post(
        "/ui/policy",
        data={"csrf": token, "since": "all"},
        files={"file": ("p.yaml", POLICY, "application/yaml")},
    )
    assert page.status_code == 200 and 'id="reduction"' in page.text
    bad = client.post("/ui/policy", data={"csrf": token, "since": "24h", "policy": "rules: 3"})
    assert bad.status_code == 400 and 'id="policy-error"' in bad.text
    assert client.post("/ui/policy", data={"since": "24h", "policy": "x"}).status_code == 403


def test_csv_export_neutralises_spreadsheet_formulas() -> None:
    from kubetrail.web.api import _csv_cell

    assert _csv_cell('=HYPERLINK("http://evil","x")') == '\'=HYPERLINK("http://evil","x")'
    assert _csv_cell("@SUM(1)") == "'@SUM(1)" and _csv_cell("+1") == "'+1"
    assert _csv_cell(["-x", "y"]) == "'-x, y"
    assert _csv_cell(-3) == -3 and _csv_cell(None) == "" and _csv_cell("kubectl") == "kubectl"


def test_environment_selects_its_clusters(live: UIServer) -> None:
    """Issue 9: production and development are looked at apart (API and the UI's selector)."""
    client = _client(live)
    auth = {"Authorization": f"Bearer {VIEWER_TOKEN}"}

    def count(**params: str) -> httpx.Response:
        return client.get("/api/query", params={"q": "| stats count()", **params}, headers=auth)

    everything = count().json()["rows"][0][0]
    assert everything > 0
    assert count(environment="development").json()["rows"][0][0] == everything
    assert count(cluster="env:development").json()["rows"][0][0] == everything
    assert count(environment="production").json()["rows"][0][0] == 0
    unknown = count(environment="staging")
    assert unknown.status_code == 400
    assert "no cluster has environment 'staging'" in unknown.json()["error"]
    assert count(environment="production", cluster="demo").status_code == 400
    page = _login(live, *VIEWER).get("/ui/overview", params={"cluster": "env:production"})
    assert page.status_code == 200
    assert '<option value="env:production" selected>' in page.text
    assert 'id="panel-gaps"' in page.text  # the overview shows gaps in the stream
