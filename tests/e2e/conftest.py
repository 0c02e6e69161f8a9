"""The whole suite, started by the README's run command (scripts/server) on free ports, with its own
database, vhost, Redis db, storage and SMTP sink, so it never meets a suite a developer is running."""
import os
import signal
import subprocess
import sys

import pytest

from shared.config import REPO_ROOT
from tests.conftest import RUN_ID, free_port, rabbitmqctl, wait_until
from tests.support.clients import sign_up_and_log_in
from tests.support.spans import SpanStore

E2E_REDIS_DB = int(os.environ.get("TEST_E2E_REDIS_DB", "14"))
READY_TIMEOUT = 120


class Suite:
    def __init__(self, url, mailbox, storage_dir, log_path, env, spans):
        self.url = url
        self.mailbox = mailbox
        self.storage_dir = storage_dir
        self.log_path = log_path
        self.env = env
        self.spans = spans

    def log(self):
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def otlp_sink(tmp_path_factory):
    """A real OTLP/HTTP receiver; the suite exports its spans there as it would to Jaeger."""
    path = tmp_path_factory.mktemp("otlp") / "spans.jsonl"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.otlp_sink", "--port", str(port), "--file", str(path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    process.stdout.readline()  # "listening"
    yield f"http://127.0.0.1:{port}", SpanStore(path)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def suite_env(tmp_path_factory, database_url, key_files, smtp_sink, otlp_sink):
    vhost = f"e2e_{RUN_ID}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    folder = tmp_path_factory.mktemp("suite")
    env = {
        **os.environ,
        "GATEWAY_PORT": str(free_port()),
        "USER_SERVICE_PORT": str(free_port()),
        "UPLOAD_SERVICE_PORT": str(free_port()),
        "PROCESS_SERVICE_PORT": str(free_port()),
        "NOTIFICATION_SERVICE_PORT": str(free_port()),
        "NGINX_RUNTIME_DIR": str(folder / "nginx"),
        "GATEWAY_ACCESS_LOG": str(folder / "access.log"),
        "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:6379/{E2E_REDIS_DB}",
        "STORAGE_DIR": str(folder / "storage"),
        "SMTP_URL": smtp_sink.url,
        "JWT_PRIVATE_KEY_FILE": key_files[0],
        "JWT_PUBLIC_KEY_FILE": key_files[1],
        "BCRYPT_ROUNDS": "4",
        # Every test logs in from 127.0.0.1: the per-address gateway limit is not what is tested here.
        "GATEWAY_LOGIN_RATE": "6000r/m",
        "GATEWAY_LOGIN_BURST": "1000",
        "GATEWAY_SIGNUP_RATE": "6000r/m",
        "GATEWAY_SIGNUP_BURST": "1000",
        "READY_TIMEOUT": str(READY_TIMEOUT),
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink[0],
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    yield env, folder
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def suite(suite_env, smtp_sink, otlp_sink):
    env, folder = suite_env
    log_path = folder / "server.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [str(REPO_ROOT / "scripts" / "server")],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    suite = Suite(url, smtp_sink.mailbox, folder / "storage", log_path, env, otlp_sink[1])

    def ready():
        if process.poll() is not None:
            raise AssertionError(f"scripts/server exited:\n{suite.log()[-5000:]}")
        return "Gateway ready" in suite.log()

    try:
        wait_until(ready, timeout=READY_TIMEOUT + 30, interval=0.5, message="the suite did not become ready")
        yield suite
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def new_account(suite):
    """Signs a new user up through the gateway; returns (user, token)."""

    def make(name="Grace"):
        return sign_up_and_log_in(suite.url, name)

    return make
