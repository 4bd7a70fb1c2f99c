"""End to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Log in, the overview on demo data, the 403 bar to the filtered search, a syntax error shown at
its column, an event, acknowledging an alert, logging out, and a viewer refused an admin
action. With ``KUBETRAIL_SCREENSHOTS=DIR`` each page's screenshot is written to DIR (the
README's come from ``KUBETRAIL_SCREENSHOTS=docs/screenshots``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_live import ADMIN, VIEWER, UIServer, ui_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.environ.get("KUBETRAIL_SCREENSHOTS")

pytestmark = [
    pytest.mark.slow,
    # skipped only outside CI: .ci/run installs chromium, so there a missing one fails
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (.ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    with ui_server(tmp_path_factory.mktemp("browser"), events=20_000) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        assert CHROMIUM is not None, "CI needs Debian's chromium (.ci/run installs it)"
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert errors == []  # no JavaScript error on any page


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=name == "overview")


def _log_in(page: Any, live: UIServer, user: str, password: str) -> None:
    page.goto(live.url + "/ui/overview")
    assert "/ui/login" in page.url
    page.fill("#user", user)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_url("**/ui/overview**")


def test_admin_journey(page: Any, live: UIServer) -> None:
    page.goto(live.url + "/ui/login")
    _shot(page, "login")
    _log_in(page, live, *ADMIN)
    cookie = next(c for c in page.context.cookies() if c["name"] == "kubetrail_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"

    # the overview on demo data: charts drawn, numbers that link to searches
    page.wait_for_selector("#panel-timechart .chart[data-drawn='1']")
    assert int(page.inner_text("#status-2xx .bar-num").replace(",", "")) > 1000
    assert page.locator("#panel-users a").count() >= 5
    assert "Burst of denied requests" in page.inner_text("#panel-alerts")
    _shot(page, "overview")

    # a bar of the requests-over-time chart leads to the search of that bucket and verb
    bars = page.locator("#panel-timechart g.point path")
    boxes = [bars.nth(i).bounding_box() for i in range(min(bars.count(), 400))]
    tallest = max((b for b in boxes if b), key=lambda b: b["height"])
    page.mouse.click(tallest["x"] + tallest["width"] / 2, tallest["y"] + tallest["height"] / 2)
    page.wait_for_url("**/ui/search?**")
    assert page.input_value("#q").startswith("verb=")
    assert "range=custom" in page.url and "from=" in page.url and "to=" in page.url
    assert int(page.inner_text("h2").split()[0].replace(",", "")) > 0
    page.go_back()
    page.wait_for_selector("#status-403")

    # the 403 bar leads to the search of exactly those requests
    denied = int(page.inner_text("#status-403 .bar-num").replace(",", ""))
    assert denied > 0
    page.click("#status-403")
    page.wait_for_url("**/ui/search?**")
    assert page.input_value("#q") == "code=403"
    assert page.inner_text("h2").startswith(f"{denied:,} matching requests")
    codes = page.locator("#results tbody tr td:nth-child(8)").all_inner_texts()
    assert codes and set(codes) == {"403"}

    # clicking a value adds it as a filter
    user = page.locator("#results tbody tr td:nth-child(3) a").first
    name = user.inner_text()
    user.click()
    page.wait_for_url("**/ui/search?**")
    assert page.input_value("#q") == f'code=403 user="{name}"'
    _shot(page, "search")

    # an aggregation renders as a table and a chart
    page.fill("#q", "code>=400 | stats count() by user, verb | sort -count")
    page.click("#run")
    page.wait_for_selector(".chart[data-drawn='1'][data-chart='chart-result']")
    assert page.locator("#results thead th").all_inner_texts() == ["user", "verb", "count"]

    # a syntax error is shown at its column
    page.fill("#q", "verb=get usr=bob")
    page.click("#run")
    error = page.inner_text("#query-error")
    assert "unknown field 'usr'; did you mean 'user'?" in error and "column 10" in error
    assert "         ^^^" in page.inner_text("#query-error pre")
    _shot(page, "search-error")

    # open an event
    page.goto(live.url + "/ui/search?q=code%3D403")
    page.locator("#results a.open").first.click()
    page.wait_for_url("**/ui/event/**")
    assert "responseStatus.code" in page.inner_text("#fields")
    assert "ResponseComplete" in page.inner_text("#stages")
    assert "before and after" in page.inner_text("#around")
    assert page.inner_text(".who").startswith("ada")

    # Secret values removed before storage show as redacted
    page.goto(live.url + "/ui/search?q=redacted%3Dtrue")
    page.locator("#results a.open").first.click()
    page.wait_for_url("**/ui/event/**")
    assert '"<redacted>"' in page.inner_text("#request-object")
    _shot(page, "event")

    # the identity page of that user
    page.goto(live.url + "/ui/search?q=code%3D403")
    page.locator("#results a.open").first.click()
    page.locator(".meta a").first.click()
    page.wait_for_url("**/ui/identity?**")
    assert "Verbs × resources" in page.inner_text("#verbs-resources")
    _shot(page, "identity")

    # acknowledge the alert
    page.goto(live.url + "/ui/alerts")
    row = page.locator(f"#alert-{live.alert_id}")
    assert row.locator(".status").inner_text().startswith("open")
    _shot(page, "alerts")
    row.get_by_text("events").click()  # the alert's events
    page.wait_for_url("**/ui/search?**")
    assert page.locator("#results a.open").count() == 1
    page.goto(live.url + "/ui/alerts")
    row.locator("button.acknowledged").click()
    page.wait_for_url("**/ui/alerts")
    status = page.locator(f"#alert-{live.alert_id} .status").inner_text()
    assert status.startswith("acknowledged") and "ack: ada" in status

    # the policy simulator
    page.goto(live.url + "/ui/policy")
    page.fill(
        "#policy",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
        "- level: None\n  resources: [{group: coordination.k8s.io, resources: [leases]}]\n"
        "- level: Metadata\n",
    )
    page.click("#simulate")
    page.wait_for_selector("#reduction")
    assert float(page.inner_text("#reduction").rstrip(" %")) > 0
    _shot(page, "policy")

    # log out: the old page needs a new login
    page.click("#logout")
    page.wait_for_url("**/ui/login")
    page.goto(live.url + "/ui/overview")
    assert "/ui/login" in page.url


def test_viewer_is_refused_an_admin_action(page: Any, live: UIServer) -> None:
    _log_in(page, live, *VIEWER)
    page.goto(live.url + "/ui/alerts")
    assert "need the admin role" in page.inner_text("main")
    before = page.locator(f"#alert-{live.alert_id} .status").inner_text()
    page.locator(f"#alert-{live.alert_id} button").first.click()
    assert "this action needs the admin role" in page.inner_text("#page-error")
    page.goto(live.url + "/ui/alerts")
    assert page.locator(f"#alert-{live.alert_id} .status").inner_text() == before
