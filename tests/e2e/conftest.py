"""The whole suite, started by the README's run command (scripts/server) on free ports, with its own
database, vhost, Redis db, storage and SMTP sink, so it never meets a suite a developer is running.

Two such suites, one per store: `suite` is the folder store's (file://); a module whose tests
must hold on both stores overrides it with `suite_on_each_store` (the s3:// one runs against the
session's SeaweedFS, with a bucket prefix of its own). Each has its own database, vhost and Redis
db: they are two deployments, not two halves of one."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import REPO_ROOT
from tests.conftest import RUN_ID, STORE_KINDS, migrated_database
from tests.support.clients import sign_up_and_log_in
from tests.support.launcher import LaunchedSuite, suite_environment
from tests.support.vhosts import delete_vhost, reset_vhost
from tests.support.processes import free_port
from tests.support.spans import SpanStore
from tests.support.stored import StoreView

E2E_REDIS_DB = {"file": int(os.environ.get("TEST_E2E_REDIS_DB", "14")), "s3": int(os.environ.get("TEST_E2E_S3_REDIS_DB", "15"))}


class E2ESuite(LaunchedSuite):
    """The launched suite with what the tests read besides its answers: mail and spans."""

    def __init__(self, env, folder, mailbox, spans):
        super().__init__(env, folder)
        self.mailbox = mailbox
        self.spans = spans
        self.storage_dir = Path(env["STORAGE_DIR"])
        self.spool_dir = Path(env["SPOOL_DIR"])
        self.store_kind = "s3" if env.get("STORAGE_URL", "").startswith("s3://") else "file"

    def storage_files(self):
        """Every stored name (partial writes as `partial:<name>`) and every file left in the
        services' spool (`spool:<path>`): what a test compares before and after."""
        view = StoreView({"STORAGE_URL": self.env.get("STORAGE_URL", ""), "STORAGE_DIR": str(self.storage_dir),
                          "SPOOL_DIR": str(self.folder / "test-spool")})
        names = {*view.names(), *(f"partial:{name}" for name in view.partials())}
        if self.store_kind == "file":
            names |= {f"partial:{path.relative_to(self.storage_dir)}" for path in self.storage_dir.rglob(".*")
                      if path.is_file()}
        spool = {f"spool:{path.relative_to(self.spool_dir)}" for path in self.spool_dir.rglob("*") if path.is_file()}
        return names | spool


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


def launch_environment(kind, tmp_path_factory, database_url, key_files, smtp_sink, otlp_sink, storage):
    vhost = f"e2e_{RUN_ID}_{kind}"
    reset_vhost(vhost)
    folder = tmp_path_factory.mktemp(f"suite-{kind}")
    env = suite_environment(
        folder,
        AMQP_URI=f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:6379/{E2E_REDIS_DB[kind]}",
        STORAGE_URL=storage,
        SPOOL_DIR=folder / "spool",
        SMTP_URL=smtp_sink.url,
        JWT_PRIVATE_KEY_FILE=key_files[0],
        JWT_PUBLIC_KEY_FILE=key_files[1],
        BCRYPT_ROUNDS=4,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_sink[0],
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_BSP_SCHEDULE_DELAY=100,
    )
    return env, folder, vhost


@pytest.fixture(scope="session")
def suite_env(tmp_path_factory, key_files, smtp_sink, otlp_sink):
    with migrated_database(f"imageproc_e2e_{RUN_ID}_file") as database_url:
        env, folder, vhost = launch_environment(
            "file", tmp_path_factory, database_url, key_files, smtp_sink, otlp_sink, "")
        yield env, folder
        delete_vhost(vhost)


@pytest.fixture(scope="session")
def suite(suite_env, smtp_sink, otlp_sink):
    """The suite on the folder store."""
    env, folder = suite_env
    with E2ESuite(env, folder, smtp_sink.mailbox, otlp_sink[1]) as suite:
        yield suite


@pytest.fixture(scope="session")
def s3_suite(tmp_path_factory, key_files, smtp_sink, otlp_sink, seaweedfs):
    """The suite on the object store: SeaweedFS, a bucket prefix of its own, the gateway's own
    read-only key signing downloads."""
    with migrated_database(f"imageproc_e2e_{RUN_ID}_s3") as database_url:
        env, folder, vhost = launch_environment(
            "s3", tmp_path_factory, database_url, key_files, smtp_sink, otlp_sink, seaweedfs.url(f"e2e-{RUN_ID}"))
        with E2ESuite(env, folder, smtp_sink.mailbox, otlp_sink[1]) as suite:
            yield suite
        delete_vhost(vhost)


@pytest.fixture(params=STORE_KINDS)
def suite_on_each_store(request):
    """For a module's `suite` override: each test runs once per store."""
    return request.getfixturevalue("suite" if request.param == "file" else "s3_suite")


@pytest.fixture
def new_account(suite):
    """Signs a new user up through the gateway; returns (user, token)."""

    def make(name="Grace"):
        return sign_up_and_log_in(suite.url, name)

    return make
