"""The nginx.conf template renders, nginx accepts it, and the gateway behaves as the contract says.

The behaviour tests run the real nginx (skipped when it is not installed: scripts/bootstrap
installs it) on free ports, in front of a small stand-in for the services, so they need neither
the Nameko services nor the system nginx.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "nginx.conf"
RENDER_SCRIPT = REPO_ROOT / "scripts" / "render-nginx-conf"
NGINX = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin")
ENVSUBST = shutil.which("envsubst")
needs_envsubst = pytest.mark.skipif(
    ENVSUBST is None, reason="envsubst is not installed (package gettext-base; scripts/bootstrap installs it)"
)
needs_nginx = pytest.mark.skipif(
    NGINX is None or ENVSUBST is None, reason="nginx or envsubst is not installed (scripts/bootstrap installs them)"
)

# Errors nginx produces itself -> the contract's error code in its JSON body.
GATEWAY_ERRORS = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "too_large",
    414: "uri_too_long",
    416: "range_not_satisfiable",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
SERVICES = ("user_service", "upload_service", "process_service", "notification_service")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render(output, **environment):
    """Runs scripts/render-nginx-conf with the given variables; returns the rendered text."""
    env = {**os.environ, **{name: str(value) for name, value in environment.items()}}
    subprocess.run(["bash", str(RENDER_SCRIPT), str(output)], env=env, check=True, capture_output=True, timeout=60)
    return output.read_text()


def gateway_environment(runtime_dir, **overrides):
    return {
        "NGINX_RUNTIME_DIR": runtime_dir,
        "GATEWAY_PORT": free_port(),
        "USER_SERVICE_ADDR": f"127.0.0.1:{free_port()}",
        "UPLOAD_SERVICE_ADDR": f"127.0.0.1:{free_port()}",
        "PROCESS_SERVICE_ADDR": f"127.0.0.1:{free_port()}",
        "NOTIFICATION_SERVICE_ADDR": f"127.0.0.1:{free_port()}",
        "STORAGE_DIR": runtime_dir / "storage",
        "OPENAPI_FILE": runtime_dir / "openapi.yaml",
        "OPENAPI_JSON_FILE": runtime_dir / "openapi.json",
        "CONSOLE_DIR": REPO_ROOT / "console",
        "GATEWAY_ACCESS_LOG": runtime_dir / "access.log",
        "GATEWAY_ERROR_LOG": runtime_dir / "error.log",
        # Not derived from a JWT key file: the gateway alone needs no such file.
        "MEDIA_SIGNING_KEY": "gateway-test-media-signing-key-0123456789",
        **overrides,
    }


# ---- The template ----------------------------------------------------------------------------


@needs_envsubst
def test_renders_every_template_variable_and_keeps_nginx_variables(tmp_path):
    text = render(tmp_path / "nginx.conf", **gateway_environment(tmp_path))
    assert not re.search(r"\$\{[A-Z][A-Z0-9_]*\}", text)
    for nginx_variable in ("$request_id", "$http_traceparent", "$binary_remote_addr", "$upstream_response_time"):
        assert nginx_variable in text


@needs_envsubst
def test_renders_as_in_the_container_without_the_venv(tmp_path):
    """The nginx container has no Python: everything comes from its environment."""
    environment = gateway_environment(
        tmp_path, REPO_ROOT=tmp_path, NGINX_TEMPLATE=TEMPLATE, MAX_UPLOAD_BYTES=1000, LONG_POLL_MAX_SECONDS=5,
        MEDIA_SIGNING_KEY="k" * 32, MEDIA_SIGNING_KEYS_PREVIOUS="p" * 32,
    )
    text = render(tmp_path / "nginx.conf", **environment)
    assert f'js_var $media_signing_keys "{"k" * 32},{"p" * 32}";' in text
    assert f"client_max_body_size {1000 + 1048576};" in text
    assert "proxy_read_timeout 20s;" in text


@needs_envsubst
def test_refuses_to_render_a_variable_without_a_value(tmp_path):
    template = tmp_path / "template.conf"
    template.write_text(TEMPLATE.read_text() + "# ${GATEWAY_NO_SUCH_SETTING}\n")
    environment = gateway_environment(tmp_path, NGINX_TEMPLATE=template)
    with pytest.raises(subprocess.CalledProcessError) as failure:
        render(tmp_path / "nginx.conf", **environment)
    assert b"GATEWAY_NO_SUCH_SETTING" in failure.value.stderr
    assert not (tmp_path / "nginx.conf").exists()


@needs_nginx
def test_nginx_accepts_the_rendered_config(tmp_path):
    render(tmp_path / "nginx.conf", **gateway_environment(tmp_path))
    result = subprocess.run(
        [NGINX, "-e", "stderr", "-t", "-p", f"{tmp_path}/", "-c", "nginx.conf"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


def test_each_gateway_error_has_a_json_error_page():
    text = TEMPLATE.read_text()
    error_pages = dict(
        (int(code), target)
        for codes, target in re.findall(r"^\s{8}error_page ([\d ]+?) (/_errors/\w+);", text, re.M)
        for code in codes.split()
    )
    for status, code in GATEWAY_ERRORS.items():
        target = error_pages.get(status)
        assert target, f"no server-wide error_page for {status}"
        block = re.search(r"location = %s \{(.*?)\n\s*\}" % re.escape(target), text, re.S)
        assert block, f"no location for {target}"
        body = block.group(1)
        assert "internal;" in body and "default_type application/json;" in body
        returned = re.search(r"return (\d+) '(.*)';", body)
        assert int(returned.group(1)) == status
        assert json.loads(returned.group(2)) == {
            "error": {"code": code, "message": json.loads(returned.group(2))["error"]["message"], "details": {}}
        }


def test_services_own_errors_are_never_replaced():
    """Only the object store's answers are replaced (its XML errors must not reach a client);
    a service's JSON error always passes through."""
    text = TEMPLATE.read_text()
    for match in re.finditer(r"proxy_intercept_errors\s+on", text):
        location = re.findall(r"location\s+([^{]+?)\s*\{", text[:match.start()])[-1]
        assert location == "/_objects/", f"errors replaced in location {location}"


# ---- The running gateway ---------------------------------------------------------------------


class StandInService(BaseHTTPRequestHandler):
    """Answers like user_service and upload_service would, and echoes what reached it."""

    health = (200, {"service": "stand-in", "status": "ok", "checks": {"database": "ok"}})
    health_probes = []

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/healthz":
            self.health_probes.append(time.monotonic())
            return self.reply(*self.health)
        if path == "/api/users/unavailable":
            return self.reply(503, {"error": {"code": "service_unavailable", "message": "from the service", "details": {}}})
        if path == "/api/images/slow/status":
            time.sleep(3)
            return self.reply(200, {"status": "queued"})
        if path.endswith("/download"):
            self.send_response(200)
            self.send_header("X-Accel-Redirect", "/_storage/outputs/result.png")
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Disposition", 'attachment; filename="result.png"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self.reply(200, {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        return self.reply(200, {"path": self.path})

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_nginx(runtime_dir, environment):
    render(runtime_dir / "nginx.conf", **environment)
    process = subprocess.Popen(
        [NGINX, "-e", "stderr", "-g", "daemon off;", "-p", f"{runtime_dir}/", "-c", "nginx.conf"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(environment["GATEWAY_PORT"])), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"nginx did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)


def stop_nginx(process):
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def gateway_without_services(runtime_dir):
    """The gateway with nothing behind it."""
    directory = runtime_dir / "alone"
    directory.mkdir()
    environment = gateway_environment(directory)
    process = start_nginx(directory, environment)
    yield f"http://127.0.0.1:{environment['GATEWAY_PORT']}"
    stop_nginx(process)


@pytest.fixture(scope="module")
def gateway(runtime_dir):
    """The gateway in front of a stand-in for user_service and upload_service."""
    directory = runtime_dir / "fronting"
    (directory / "storage" / "outputs").mkdir(parents=True)
    (directory / "storage" / "outputs" / "result.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    (directory / "openapi.yaml").write_text("openapi: 3.1.0\n")
    (directory / "openapi.json").write_text('{"openapi": "3.1.0"}\n')
    service = ThreadingHTTPServer(("127.0.0.1", 0), StandInService)
    threading.Thread(target=service.serve_forever, daemon=True).start()
    service_address = f"127.0.0.1:{service.server_address[1]}"
    environment = gateway_environment(
        directory,
        USER_SERVICE_ADDR=service_address,
        UPLOAD_SERVICE_ADDR=service_address,
        PROCESS_SERVICE_ADDR=service_address,
        NOTIFICATION_SERVICE_ADDR=service_address,
        GATEWAY_MAX_BODY_BYTES=4096,
        GATEWAY_LONG_POLL_TIMEOUT="1s",
        GATEWAY_LOGIN_RATE="1r/m",
        GATEWAY_LOGIN_BURST=1,
    )
    process = start_nginx(directory, environment)
    yield f"http://127.0.0.1:{environment['GATEWAY_PORT']}"
    stop_nginx(process)
    service.shutdown()


def assert_gateway_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) == {"code", "message", "details"}
    for header, value in SECURITY_HEADERS.items():
        # An error raised after the headers went out (416 from a range) repeats them: same value.
        assert {part.strip() for part in response.headers[header].split(",")} == {value}


@needs_nginx
def test_unknown_path_is_a_json_404(gateway_without_services):
    assert_gateway_error(requests.get(f"{gateway_without_services}/nowhere"), 404, "not_found")
    assert_gateway_error(requests.get(f"{gateway_without_services}/_storage/outputs/x.png"), 404, "not_found")
    assert_gateway_error(requests.get(f"{gateway_without_services}/api/users"), 404, "not_found")


@needs_nginx
def test_service_down_is_a_json_502(gateway_without_services):
    assert_gateway_error(requests.get(f"{gateway_without_services}/api/users/me"), 502, "bad_gateway")
    assert_gateway_error(requests.get(f"{gateway_without_services}/api/images"), 502, "bad_gateway")


@needs_nginx
def test_healthz_names_every_service_it_cannot_reach(gateway_without_services):
    response = requests.get(f"{gateway_without_services}/healthz")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == sorted(SERVICES)
    assert body["services"] == {name: {"status": "unavailable", "error": "bad_gateway"} for name in SERVICES}


@needs_nginx
def test_unparseable_request_is_a_json_400(gateway_without_services):
    port = int(gateway_without_services.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["code"] == "bad_request"


@needs_nginx
def test_healthz_gathers_each_services_own_report(gateway):
    response = requests.get(f"{gateway}/healthz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "failing": [], "services": {
        name: {"service": "stand-in", "status": "ok", "checks": {"database": "ok"}} for name in SERVICES
    }}
    assert_gateway_error(requests.post(f"{gateway}/healthz"), 405, "method_not_allowed")


@needs_nginx
def test_healthz_asks_each_service_at_most_about_once_a_second(gateway):
    time.sleep(1.1)  # past what earlier tests cached
    StandInService.health_probes.clear()
    started = time.monotonic()
    for _ in range(30):
        assert requests.get(f"{gateway}/healthz").status_code == 200
    elapsed = time.monotonic() - started
    # One address stands in for all four services: four probes per second at most (+1 s of slack).
    assert len(StandInService.health_probes) <= 4 * (int(elapsed) + 2), (len(StandInService.health_probes), elapsed)


@needs_nginx
def test_a_failing_service_fails_the_suite_and_is_named(tmp_path):
    healthy = HealthStandIn(200, {"service": "x", "status": "ok", "checks": {}})
    failing = HealthStandIn(503, {"service": "process_service", "status": "unavailable",
                                  "checks": {"amqp": "ok", "storage": "error: OSError"}})
    lying = HealthStandIn(500, {"error": {"code": "internal_error", "message": "boom", "details": {}}})
    environment = gateway_environment(
        tmp_path, USER_SERVICE_ADDR=healthy.address, UPLOAD_SERVICE_ADDR=lying.address,
        PROCESS_SERVICE_ADDR=failing.address, NOTIFICATION_SERVICE_ADDR=f"127.0.0.1:{free_port()}",
    )
    process = start_nginx(tmp_path, environment)
    try:
        response = requests.get(f"http://127.0.0.1:{environment['GATEWAY_PORT']}/healthz")
    finally:
        stop_nginx(process)
        for stand_in in (healthy, failing, lying):
            stand_in.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["notification_service", "process_service", "upload_service"]
    assert body["services"]["user_service"]["status"] == "ok"
    assert body["services"]["process_service"]["checks"]["storage"] == "error: OSError"
    assert body["services"]["upload_service"] == {"status": "unavailable", "error": "internal_error"}
    assert body["services"]["notification_service"] == {"status": "unavailable", "error": "bad_gateway"}


class HealthStandIn:
    """A server that answers /healthz with one fixed reply."""

    def __init__(self, status, body):
        class Handler(StandInService):
            def do_GET(self):
                return self.reply(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()


@needs_nginx
def test_oversized_body_is_refused_by_nginx_with_json_413(gateway):
    response = requests.post(f"{gateway}/api/images/upload", files={"image": ("a.png", b"x" * 8192)})
    assert_gateway_error(response, 413, "too_large")
    small = requests.post(f"{gateway}/api/images/upload", files={"image": ("a.png", b"x" * 1024)})
    assert small.status_code == 200


@needs_nginx
def test_login_is_throttled_with_json_429(gateway):
    statuses = [requests.post(f"{gateway}/api/users/login", json={}).status_code for _ in range(4)]
    assert statuses[0] == 200 and 429 in statuses
    response = requests.post(f"{gateway}/api/users/login", json={})
    assert_gateway_error(response, 429, "too_many_requests")
    # Only POST counts.
    assert requests.get(f"{gateway}/api/users/login").status_code == 200


@needs_nginx
def test_slow_service_is_a_json_504(gateway):
    assert_gateway_error(requests.get(f"{gateway}/api/images/slow/status"), 504, "gateway_timeout")


@needs_nginx
def test_method_not_allowed_is_json_405(gateway):
    assert_gateway_error(requests.post(f"{gateway}/api/openapi.yaml"), 405, "method_not_allowed")


@needs_nginx
def test_services_json_errors_pass_through_unchanged(gateway):
    response = requests.get(f"{gateway}/api/users/unavailable")
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "from the service"


@needs_nginx
def test_openapi_document_is_served_as_yaml(gateway):
    response = requests.get(f"{gateway}/api/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/yaml"
    assert response.text == "openapi: 3.1.0\n"


@needs_nginx
def test_download_is_streamed_by_nginx_from_storage(gateway, runtime_dir):
    response = requests.get(f"{gateway}/api/images/abc/download")
    assert response.status_code == 200
    assert response.content == (runtime_dir / "fronting" / "storage" / "outputs" / "result.png").read_bytes()
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == 'attachment; filename="result.png"'
    assert "X-Accel-Redirect" not in response.headers


@needs_nginx
def test_download_range_outside_the_file_is_json_416(gateway):
    response = requests.get(f"{gateway}/api/images/abc/download", headers={"Range": "bytes=999999-"})
    assert_gateway_error(response, 416, "range_not_satisfiable")


@needs_nginx
def test_routes_reach_their_service(gateway):
    for path in ("/api/users/me", "/api/images", "/api/images/abc", "/api/images/status/abc?wait=1"):
        response = requests.get(f"{gateway}{path}")
        assert response.status_code == 200, path
        assert response.json()["path"] == path


@needs_nginx
def test_trace_context_is_created_or_passed_through(gateway):
    created = requests.get(f"{gateway}/api/users/me")
    traceparent = created.json()["headers"]["traceparent"]
    match = TRACEPARENT.match(traceparent)
    assert match, traceparent
    assert match.group(1) == created.headers["X-Request-Id"] == created.json()["headers"]["x-request-id"]

    client_traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    passed = requests.get(f"{gateway}/api/users/me", headers={"traceparent": client_traceparent})
    assert passed.json()["headers"]["traceparent"] == client_traceparent

    malformed = requests.get(f"{gateway}/api/users/me", headers={"traceparent": "nonsense"})
    assert TRACEPARENT.match(malformed.json()["headers"]["traceparent"])


@needs_nginx
def test_access_log_is_json_with_the_trace_id(gateway, runtime_dir):
    client_traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    requests.get(f"{gateway}/api/users/me", headers={"traceparent": client_traceparent})
    log_file = runtime_dir / "fronting" / "access.log"
    deadline = time.monotonic() + 5
    while True:
        entries = [json.loads(line) for line in log_file.read_text().splitlines()]
        matching = [entry for entry in entries if entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"]
        if matching or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert matching
    entry = matching[-1]
    assert entry["method"] == "GET" and entry["uri"] == "/api/users/me" and entry["status"] == 200
    for field in ("time", "bytes", "request_time", "upstream_response_time", "request_id"):
        assert field in entry


# ---- The web console (console/, GET /) ---------------------------------------------------------

CONSOLE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                  "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


@needs_nginx
def test_the_console_page_is_served_at_the_root_with_its_own_policy(gateway_without_services):
    response = requests.get(f"{gateway_without_services}/")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/html"
    assert response.text == (REPO_ROOT / "console" / "index.html").read_text()
    assert response.headers["Content-Security-Policy"] == CONSOLE_POLICY
    assert response.headers["Cache-Control"] == "no-cache"
    for header, value in SECURITY_HEADERS.items():
        assert response.headers[header] == value


@needs_nginx
@pytest.mark.parametrize("path, content_type", [
    ("/console/js/main.js", "text/javascript"),  # module scripts must be served as JavaScript
    ("/console/app.css", "text/css"),
    ("/console/icon.svg", "image/svg+xml"),
])
def test_the_console_assets_are_served_with_their_types(gateway_without_services, path, content_type):
    response = requests.get(gateway_without_services + path)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Security-Policy"] == CONSOLE_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@needs_nginx
def test_around_the_console_unknown_paths_are_still_json_404s_with_the_api_policy(gateway_without_services):
    for path in ("/console/", "/console/nothing.js", "/console", "/index.html", "/console/../nginx.conf"):
        response = requests.get(gateway_without_services + path)
        assert_gateway_error(response, 404, "not_found")
        assert response.headers["Content-Security-Policy"] == API_POLICY, path
    assert requests.get(f"{gateway_without_services}/healthz/gateway").headers["Content-Security-Policy"] == API_POLICY
    assert_gateway_error(requests.post(f"{gateway_without_services}/"), 405, "method_not_allowed")


@needs_nginx
def test_openapi_document_is_served_as_json(gateway):
    response = requests.get(f"{gateway}/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"openapi": "3.1.0"}
