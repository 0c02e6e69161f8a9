"""A service whose container dies exits, and the local runner (scripts/respawn, as the Procfile runs
every service) starts it again. The container's thread is killed from inside the running process,
through nameko's own operator backdoor (`nameko run --backdoor-port`)."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy

from shared.config import REPO_ROOT
from tests.support.processes import free_port, wait_for

KILL_WEB_SERVER_THREAD = (
    "server = [e for e in list(runner.containers)[0].subextensions if type(e).__name__ == 'JsonWebServer'][0]; "
    "server._gt.kill(RuntimeError('killed by a test')); print('sent')\n"
)


def nameko_pid(respawn_pid):
    """The pid of the service run by scripts/respawn (its one child that is nameko)."""
    children = subprocess.run(["pgrep", "-P", str(respawn_pid)], capture_output=True, text=True).stdout.split()
    for pid in children:
        try:
            if b"nameko" in open(f"/proc/{pid}/cmdline", "rb").read():
                return int(pid)
        except OSError:
            continue
    return None


def answers_rpc(config):
    """An RPC round trip: the service's consumers are declared and consuming. (Its HTTP port
    answers earlier, while nameko is still declaring queues; a SIGTERM in that instant races
    nameko 2.14's own start-up and ends in a container kill.)"""
    try:
        with ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"]}, timeout=5) as cluster:
            return cluster.user_service.health()["status"] in ("ok", "unavailable")
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return False


def healthy(port):
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def backdoor(port, command):
    """Runs one line in the service's Python prompt; returns what it printed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.recv(4096)  # the banner and prompt
        connection.sendall(command.encode())
        answer = b""
        while b"sent" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.decode(errors="replace")


def start_under_respawn(config, log_path, port, backdoor_port):
    """user_service run as the Procfile runs it: under scripts/respawn, in a session of its own."""
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "AMQP_URI": config["AMQP_URI"],
        "DATABASE_URL": config["DATABASE_URL"],
        "REDIS_URL": config["REDIS_URL"],
        "JWT_PRIVATE_KEY_FILE": config["JWT_PRIVATE_KEY_FILE"],
        "JWT_PUBLIC_KEY_FILE": config["JWT_PUBLIC_KEY_FILE"],
        "BCRYPT_ROUNDS": "4",
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "OTEL_SERVICE_NAME": "user_service",
    }
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            ["scripts/respawn", "user_service", ".venv/bin/nameko", "run", "--config", "config.yaml",
             "--backdoor-port", str(backdoor_port), "user_service.service:UserService"],
            cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def respawned_user_service(config, tmp_path):
    port, backdoor_port = free_port(), free_port()
    log_path = tmp_path / "respawn.log"
    process = start_under_respawn(config, log_path, port, backdoor_port)
    try:
        wait_for(lambda: healthy(port) and answers_rpc(config), 60,
                 lambda: f"user_service did not start:\n{log_path.read_text()[-3000:]}", interval=0.1)
        yield process, port, backdoor_port, log_path
    finally:
        stop(process)


def test_a_service_whose_container_dies_exits_and_is_started_again(respawned_user_service):
    respawn, port, backdoor_port, log_path = respawned_user_service
    first = nameko_pid(respawn.pid)
    assert first is not None

    killed = time.monotonic()
    assert "sent" in backdoor(backdoor_port, KILL_WEB_SERVER_THREAD)
    wait_for(lambda: "respawn: user_service exited with status" in log_path.read_text(), 15,
             lambda: f"the process outlived its dead container:\n{log_path.read_text()[-3000:]}")
    exited_after = time.monotonic() - killed
    status = int(re.search(r"exited with status (\d+)", log_path.read_text()).group(1))
    assert status != 0
    assert exited_after < 10

    second = wait_for(lambda: nameko_pid(respawn.pid), 15, "no new user_service was started")
    assert second != first
    wait_for(lambda: healthy(port), 60, lambda: f"the new user_service does not answer:\n{log_path.read_text()[-3000:]}")
    assert respawn.poll() is None


def test_a_service_stopped_on_purpose_is_not_started_again(respawned_user_service):
    respawn, port, _, log_path = respawned_user_service
    os.killpg(respawn.pid, signal.SIGTERM)  # as honcho stops its processes
    assert respawn.wait(timeout=30) == 0, log_path.read_text()[-3000:]
    assert "respawn:" not in log_path.read_text()
    assert not healthy(port)
