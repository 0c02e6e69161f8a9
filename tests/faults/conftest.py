"""Fault injection against the whole suite, on servers of its own (tests/faults/suite.py).

The suite is started once per session. Each test gets it through the `faults` fixture, which checks
that everything is up before the test and puts back whatever the test stopped afterwards (servers,
services, SMTP, free space), restarting the whole suite when honcho went down. After a failed test
it also wipes what the failure left (queues, dead letters, images, files, Redis, mail) and restarts
every process, so that one bug fails one test and not every test after it.

`faults.assert_alive(after)` checks that no service died (or is dying) because of a fault;
`faults.traffic()` keeps requests going in the background, so that a fault meets workers in the
middle of their work; `faults.verify(accounts, uploads)` is the common end-of-test check
(tests/faults/verification.py).
"""
import contextlib
import os

import pytest

from tests.faults.services import SmtpControl
from tests.faults.suite import STORAGE_SIZE, FaultSuite, fault_environment
from tests.support.servers import PostgresCluster, RabbitNode, RedisServer, tmpfs


def pytest_configure(config):
    # The lead registers this in pytest.ini as well; registering here keeps --strict-markers happy meanwhile.
    config.addinivalue_line("markers", "faults: fault injection against the whole suite on private servers (slow)")


def _require_root():
    if os.geteuid() != 0:
        pytest.skip("fault tests start their own RabbitMQ, PostgreSQL and Redis as those servers' "
                    "OS users and mount a tmpfs: run them as root (CI does)")


@contextlib.contextmanager
def _launched_fault_suite(folder, key_files, seaweedfs=None):
    """The whole suite on servers of its own: on the folder store (a small tmpfs), or on the
    object store when `seaweedfs` is given (a bucket prefix of its own)."""
    with contextlib.ExitStack() as stack:
        rabbit = RabbitNode()
        rabbit.launch()
        stack.callback(rabbit.stop)
        postgres = stack.enter_context(PostgresCluster())
        redis_server = stack.enter_context(RedisServer())
        storage_dir = stack.enter_context(tmpfs(folder / "storage", size=STORAGE_SIZE))
        smtp = SmtpControl(folder / "mail")
        smtp.start()
        stack.callback(smtp.stop)
        rabbit.wait_running()

        storage_url = seaweedfs.url(f"faults-{folder.name}") if seaweedfs else ""
        env = fault_environment(folder, rabbit, postgres, redis_server, smtp, storage_dir, key_files, storage_url)
        suite = FaultSuite(folder, env, rabbit, postgres, redis_server, smtp, storage_dir, seaweedfs)
        stack.callback(suite.stop)
        suite.start()
        yield suite


@pytest.fixture(scope="session")
def _fault_suite(tmp_path_factory, key_files):
    _require_root()
    with _launched_fault_suite(tmp_path_factory.mktemp("faults"), key_files) as suite:
        yield suite


@pytest.fixture(scope="session")
def _s3_fault_suite(tmp_path_factory, key_files, seaweedfs):
    """The same on the session's SeaweedFS (tests/conftest.py), which a test may stop: every
    fault fixture starts it again before the next test."""
    _require_root()
    with _launched_fault_suite(tmp_path_factory.mktemp("faults-s3"), key_files, seaweedfs) as suite:
        yield suite


@pytest.fixture
def fault_store():
    """Which store the fault suite of a test runs on: the folder store; a module whose faults
    touch storage overrides this with `params=STORE_KINDS` (or ["s3"])."""
    return "file"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"faults_{report.when}_failed", report.failed)


@pytest.fixture
def faults(request, fault_store):
    """The fault suite, everything up; whatever the test stopped or filled is put back afterwards,
    and after a failure everything it left behind is wiped (see FaultSuite.reset)."""
    suite = request.getfixturevalue("_fault_suite" if fault_store == "file" else "_s3_fault_suite")
    suite.restore()
    yield suite
    if getattr(request.node, "faults_call_failed", True):
        suite.reset()
    else:
        suite.restore()
