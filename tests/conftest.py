"""Fixtures every test level shares. Integration and end-to-end tests use the real RabbitMQ,
PostgreSQL and Redis, isolated per run: their own vhost, their own database, their own Redis db."""
import eventlet

eventlet.monkey_patch()  # before anything imports socket or threading: the services run patched

import contextlib  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import redis  # noqa: E402
from nameko.messaging import QueueConsumer  # noqa: E402

from shared import migrate  # noqa: E402
from shared.config import REPO_ROOT, load_config  # noqa: E402
from shared.keys import ensure_key_pair  # noqa: E402
from tests.support.mailbox import Mailbox  # noqa: E402
from tests.support.launcher import create_database, drop_database  # noqa: E402
from tests.support.processes import free_port  # noqa: E402
from tests.support.seaweedfs import SeaweedFS  # noqa: E402
from tests.support.vhosts import VhostPool  # noqa: E402

RUN_ID = uuid.uuid4().hex[:10]
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "13"))
# The image corpus (tests/data/README.md); CORPUS_DIR points at another copy.
CORPUS_DIR = Path(os.environ.get("CORPUS_DIR") or REPO_ROOT / "tests" / "data" / "corpus")


# How often a consumer in a test's container looks for a stop request. nameko's consumers wait for
# messages in slices of kombu's `safety_interval` (1 s), so stopping a container took up to a second
# unless something (a deleted vhost's cancel) woke them up: a second of most integration tests'
# teardown. Services outside tests keep kombu's default.
CONSUMER_STOP_CHECK_SECONDS = 0.1


@pytest.fixture(scope="session", autouse=True)
def containers_stop_quickly():
    consume = QueueConsumer.consume

    def consume_checking_often(self, *args, **kwargs):
        return consume(self, *args, **{"safety_interval": CONSUMER_STOP_CHECK_SECONDS, **kwargs})

    QueueConsumer.consume = consume_checking_often
    yield
    QueueConsumer.consume = consume


@pytest.fixture(scope="session")
def vhost_pool():
    pool = VhostPool(f"test_{RUN_ID}")
    yield pool
    pool.close()


@pytest.fixture
def amqp_uri(vhost_pool):
    """A vhost of its own per test: durable queues left by one test never feed the next."""
    vhost = vhost_pool.take()
    yield f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"
    vhost_pool.give_back(vhost)


@contextlib.contextmanager
def migrated_database(name):
    """A new database with every service's tables, dropped afterwards; yields its URL. One per
    deployment: two suites on one database would relay each other's outbox rows onto their own
    brokers (an upload of one processed by the other, against a store that lacks its bytes)."""
    create_database(name, POSTGRES_ADMIN_URL)
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    config = {"DATABASE_URL": url, "USER_DATABASE_URL": None, "UPLOAD_DATABASE_URL": None}
    try:
        for service in migrate.MIGRATED_SERVICES:
            migrate.upgrade(service, config)
        yield url
    finally:
        drop_database(name, POSTGRES_ADMIN_URL)


@pytest.fixture(scope="session")
def database_url():
    with migrated_database(f"imageproc_test_{RUN_ID}") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url():
    url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="session")
def key_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    private, public = folder / "jwt.pem", folder / "jwt.pub.pem"
    ensure_key_pair(private, public)
    return str(private), str(public)


@pytest.fixture(scope="session")
def base_config(database_url, redis_url, key_files):
    config = load_config()
    config.pop("LOGGING", None)
    config.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        JWT_PRIVATE_KEY_FILE=key_files[0],
        JWT_PUBLIC_KEY_FILE=key_files[1],
        BCRYPT_ROUNDS=4,  # the cost is configuration; tests need not pay production's
        PROCESSING_LEASE_SECONDS=1,  # a crashed worker's lease runs out without a long wait
        WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    return config


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """The real S3-compatible store (SeaweedFS), started once per session when a test needs it.
    Its endpoint and keys go into this process's environment, where boto3 reads them (as the
    services do), and so into every suite the tests launch."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as store:
        saved = {name: os.environ.get(name) for name in store.env()}
        os.environ.update(store.env())
        yield store
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def storage_backend():
    """Which store a test's configuration names: "file" here; a module that runs its tests on
    both stores overrides this fixture with `params=STORE_KINDS`."""
    return "file"


STORE_KINDS = ("file", "s3")


@pytest.fixture
def storage_url(request, storage_backend):
    """STORAGE_URL for the test: empty (the folder store, STORAGE_DIR) or a prefix of the test's
    own in the SeaweedFS bucket."""
    if storage_backend == "file":
        return ""
    store = request.getfixturevalue("seaweedfs")
    return store.url(f"t-{RUN_ID}-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def config(base_config, tmp_path, redis_url, amqp_uri, storage_url):
    """A fresh configuration per test: own vhost, storage (folder or bucket prefix) and outbox
    folder, an empty Redis db."""
    redis.Redis.from_url(redis_url).flushdb()
    return {
        **base_config,
        "AMQP_URI": amqp_uri,
        "STORAGE_URL": storage_url,
        "SPOOL_DIR": str(tmp_path / "spool"),
        "STORAGE_DIR": str(tmp_path / "storage"),
        "MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
    }


@pytest.fixture
def web_url(config):
    return f"http://{config['WEB_SERVER_ADDRESS']}"


class SmtpSink:
    def __init__(self, port, folder):
        self.url = f"smtp://127.0.0.1:{port}"
        self.port = port
        self.mailbox = Mailbox(folder)


def start_smtp_sink(port, folder, host="127.0.0.1"):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smtp_sink", "--port", str(port), "--dir", str(folder), "--host", host],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    process.stdout.readline()  # "listening": the server is up
    return process


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smtp-sink")
    port = free_port()
    process = start_smtp_sink(port, folder)
    yield SmtpSink(port, folder)
    process.terminate()
    process.wait(timeout=10)
