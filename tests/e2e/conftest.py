"""The whole suite, started by the README's run command (scripts/server) on free ports, with its own
database, vhost, Redis db, storage and SMTP sink, so it never meets a suite a developer is running."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import REPO_ROOT
from tests.conftest import RUN_ID
from tests.support.clients import sign_up_and_log_in
from tests.support.launcher import LaunchedSuite, delete_vhost, reset_vhost, suite_environment
from tests.support.processes import free_port
from tests.support.spans import SpanStore

E2E_REDIS_DB = int(os.environ.get("TEST_E2E_REDIS_DB", "14"))


class E2ESuite(LaunchedSuite):
    """The launched suite with what the tests read besides its answers: mail and spans."""

    def __init__(self, env, folder, mailbox, spans):
        super().__init__(env, folder)
        self.mailbox = mailbox
        self.spans = spans
        self.storage_dir = Path(env["STORAGE_DIR"])


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
    reset_vhost(vhost)
    folder = tmp_path_factory.mktemp("suite")
    env = suite_environment(
        folder,
        AMQP_URI=f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:6379/{E2E_REDIS_DB}",
        SMTP_URL=smtp_sink.url,
        JWT_PRIVATE_KEY_FILE=key_files[0],
        JWT_PUBLIC_KEY_FILE=key_files[1],
        BCRYPT_ROUNDS=4,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_sink[0],
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_BSP_SCHEDULE_DELAY=100,
    )
    yield env, folder
    delete_vhost(vhost)


@pytest.fixture(scope="session")
def suite(suite_env, smtp_sink, otlp_sink):
    env, folder = suite_env
    with E2ESuite(env, folder, smtp_sink.mailbox, otlp_sink[1]) as suite:
        yield suite


@pytest.fixture
def new_account(suite):
    """Signs a new user up through the gateway; returns (user, token)."""

    def make(name="Grace"):
        return sign_up_and_log_in(suite.url, name)

    return make
