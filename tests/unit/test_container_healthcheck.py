"""shared/healthcheck.py, the image's HEALTHCHECK: which URL it probes, and its exit status against
a real HTTP server answering 200, 503, or nothing."""
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared.healthcheck import probe_url
from tests.support.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("address, url", [
    ("0.0.0.0:8001", "http://127.0.0.1:8001/healthz"),
    ("127.0.0.1:8002", "http://127.0.0.1:8002/healthz"),
    ("10.0.0.5:8003", "http://10.0.0.5:8003/healthz"),
    ("[::]:8004", "http://127.0.0.1:8004/healthz"),
    (":8000", "http://127.0.0.1:8000/healthz"),
])
def test_probes_the_listen_address_on_loopback_when_it_is_a_wildcard(address, url):
    assert probe_url(address) == url


@pytest.fixture
def server():
    """A /healthz answering the status in `server.status`."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(httpd.status if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    httpd.status = 200
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def probe(port):
    return subprocess.run(
        [sys.executable, "-m", "shared.healthcheck"], cwd=REPO_ROOT, capture_output=True, text=True,
        env={"WEB_SERVER_ADDRESS": f"0.0.0.0:{port}", "PATH": "/usr/bin:/bin"}, timeout=30,
    )


def test_exits_0_when_the_service_answers_200(server):
    assert probe(server.server_address[1]).returncode == 0


def test_exits_1_with_the_reason_when_a_dependency_is_down(server):
    server.status = 503
    result = probe(server.server_address[1])
    assert result.returncode == 1
    assert "503" in result.stderr


def test_exits_1_when_nothing_listens():
    assert probe(free_port()).returncode == 1
