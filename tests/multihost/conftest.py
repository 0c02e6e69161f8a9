"""The cluster of tests/multihost/cluster.py, started once for the module that needs it, on
servers of its own listening on the infrastructure host's bridge address."""
import contextlib
import os
import shutil

import pytest

from tests.conftest import start_smtp_sink
from tests.multihost.cluster import Cluster
from tests.multihost.network import Network
from tests.support.mailbox import Mailbox
from tests.support.processes import free_port
from tests.support.seaweedfs import SeaweedFS
from tests.support.servers import PostgresCluster, RabbitNode, RedisServer
from tests.support.stored import StoreView


def pytest_configure(config):
    config.addinivalue_line("markers", "multihost: the suite across network namespaces (root, slow)")


def _missing_requirement():
    if os.geteuid() != 0:
        return "the multi-host tests create network namespaces and run servers as their OS users: run them as root (CI does)"
    if not shutil.which("ip") or not os.path.exists("/var/run/netns") and not os.access("/var/run", os.W_OK):
        return "iproute2's `ip netns` is needed"
    return None


class Smtp:
    """The SMTP sink on the infrastructure host's address."""

    def __init__(self, folder, host):
        self.port = free_port()
        self.url = f"smtp://{host}:{self.port}"
        self.mailbox = Mailbox(folder)
        self.process = start_smtp_sink(self.port, folder, host)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@contextlib.contextmanager
def _environment(values):
    """`values` in this process's environment for the block (boto3 reads the store's from there)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, key_files):
    reason = _missing_requirement()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("cluster")
    with contextlib.ExitStack() as stack:
        network = stack.enter_context(Network())
        infrastructure = network.address
        rabbit = RabbitNode(host=infrastructure)
        rabbit.launch()
        stack.callback(rabbit.stop)
        postgres = stack.enter_context(PostgresCluster(host=infrastructure))
        redis_server = stack.enter_context(RedisServer(host=infrastructure))
        seaweedfs = stack.enter_context(SeaweedFS(folder / "seaweedfs-data", ip=infrastructure))
        smtp = Smtp(folder / "mail", infrastructure)
        stack.callback(smtp.stop)
        rabbit.wait_running()
        stack.enter_context(_environment(seaweedfs.env()))
        cluster = Cluster(network, folder, rabbit, postgres, redis_server, seaweedfs, smtp, key_files)
        cluster.records.store = StoreView({"STORAGE_URL": cluster.settings["STORAGE_URL"], "STORAGE_DIR": str(folder / "view"),
                                           "SPOOL_DIR": str(folder / "view-spool")})
        stack.callback(cluster.stop)
        cluster.start()
        yield cluster
