"""nginx's per-address limits on the credential endpoints, at their shipped defaults.

The suite's own gateway runs with the limits lifted (every test logs in from 127.0.0.1), so these
tests start a second nginx from the same template with the defaults of scripts/render-nginx-conf,
in front of the same services. Loopback has a whole /8, so clients can come from 127.0.0.2, .3, …
as if from other machines.
"""
import http.client
import json
import subprocess
import uuid

import pytest

from shared.config import REPO_ROOT
from tests.support.processes import free_port, wait_for

LOGIN_BURST = 30  # scripts/render-nginx-conf's defaults: 30r/m with a burst of 30
SIGNUP_BURST = 60
# Client addresses no other test uses, so that no earlier request counts against them.
ADDRESSES = iter(f"127.0.{uuid.uuid4().int % 200 + 20}.{host}" for host in range(2, 250))


@pytest.fixture(scope="module")
def default_gateway(suite, tmp_path_factory):
    folder = tmp_path_factory.mktemp("default-limits")
    port = free_port()
    env = {
        key: value for key, value in suite.env.items()
        if not key.startswith(("GATEWAY_LOGIN_", "GATEWAY_SIGNUP_"))
    }
    env.update(GATEWAY_PORT=str(port), NGINX_RUNTIME_DIR=str(folder), GATEWAY_ACCESS_LOG=str(folder / "access.log"))
    subprocess.run([str(REPO_ROOT / "scripts" / "render-nginx-conf")], env=env, check=True, cwd=REPO_ROOT)
    nginx = subprocess.Popen(
        ["nginx", "-e", "stderr", "-g", "daemon off;", "-p", f"{folder}/", "-c", "nginx.conf"],
        env=env, cwd=REPO_ROOT, stderr=open(folder / "error.log", "wb"),
    )
    try:
        wait_for(lambda: _request(port, "127.0.0.1", "GET", "/healthz/gateway")[0] == 200,
                 timeout=20, interval=0.2, message="the second gateway did not start")
        yield port
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def _request(port, source, method, path, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    except ConnectionRefusedError:
        return None, None, b""
    finally:
        connection.close()


def _login(port, source):
    # A new unknown email each time: user_service's own per-account lock stays out of the way.
    email = f"nobody.{uuid.uuid4().hex[:12]}@example.com"
    return _request(port, source, "POST", "/api/users/login", {"email": email, "password": "wrong password"})


def test_login_attempts_beyond_the_burst_are_429_json(default_gateway):
    client = next(ADDRESSES)
    answers = [_login(default_gateway, client)[0] for _ in range(LOGIN_BURST + 1)]
    assert 429 not in answers, f"within the burst every attempt reaches user_service: {answers}"
    status, content_type, body = _login(default_gateway, client)
    assert status == 429
    assert content_type == "application/json"
    assert json.loads(body)["error"]["code"] == "too_many_requests"


def test_the_limit_is_per_client_address(default_gateway):
    sprayer, bystander = next(ADDRESSES), next(ADDRESSES)
    for _ in range(LOGIN_BURST + 2):
        _login(default_gateway, sprayer)
    assert _login(default_gateway, sprayer)[0] == 429
    assert _login(default_gateway, bystander)[0] == 401, "another address is not throttled"


def test_only_posts_count(default_gateway):
    """A GET to the login path is 405 from the service, never a 429 that would hide it."""
    client = next(ADDRESSES)
    for _ in range(LOGIN_BURST + 2):
        _login(default_gateway, client)
    status, _, body = _request(default_gateway, client, "GET", "/api/users/login")
    assert status == 405, body


def test_signups_beyond_the_burst_are_429_json(default_gateway):
    client = next(ADDRESSES)
    invalid = {"name": "", "email": "not-an-email", "password": "x"}  # nothing is created
    answers = [
        _request(default_gateway, client, "POST", "/api/users/signup", invalid)[0] for _ in range(SIGNUP_BURST + 1)
    ]
    assert 429 not in answers, answers
    status, content_type, body = _request(default_gateway, client, "POST", "/api/users/signup", invalid)
    assert (status, content_type) == (429, "application/json")
    assert json.loads(body)["error"]["code"] == "too_many_requests"
