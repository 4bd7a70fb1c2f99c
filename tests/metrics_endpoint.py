"""A real HTTPS ``/metrics`` endpoint on 127.0.0.1 that answers like kube-apiserver's, for the
scraper's tests: a bearer token is required, and the audit counters are whatever the test sets
between two scrapes (``tests/fixtures/apiserver-metrics.txt``)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kubetrail.certs import DevCerts

FIXTURE = Path(__file__).parent / "fixtures" / "apiserver-metrics.txt"
TOKEN = "scrape-token-0123456789"


@dataclass
class Endpoint:
    """The endpoint's URL, the counters it serves next, and the requests it answered."""

    url: str
    values: dict[str, int] = field(
        default_factory=lambda: {"webhook_errors": 0, "log_errors": 0, "events": 0}
    )
    requests: list[str | None] = field(default_factory=list)

    def text(self) -> str:
        """The fixture with the current counters (its own comment lines left out)."""
        lines = [
            line
            for line in FIXTURE.read_text().splitlines()
            if not line.startswith("# ") or line.startswith(("# HELP ", "# TYPE "))
        ]
        body = "\n".join(lines) + "\n"
        for key, value in self.values.items():
            body = body.replace("{" + key + "}", str(value))
        return body


@contextmanager
def metrics_endpoint(certs: DevCerts) -> Iterator[Endpoint]:
    """Serve until the block ends (TLS with the dev CA's server certificate)."""
    holder: list[Endpoint] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            endpoint = holder[0]
            auth = self.headers.get("Authorization")
            allowed = self.path == "/metrics" and auth == f"Bearer {TOKEN}"
            # The answer's counters are taken before the request is counted: a test that sees
            # the request counted may change the values without racing this answer.
            body = endpoint.text().encode() if allowed else b""
            endpoint.requests.append(auth)
            if not allowed:
                self.send_response(401 if self.path == "/metrics" else 404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs.server), str(certs.server_key))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    holder.append(Endpoint(f"https://127.0.0.1:{httpd.server_address[1]}/metrics"))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield holder[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
