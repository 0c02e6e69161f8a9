"""What an RPC caller gets when the method fails (shared/rpc.py): a failure that says "later" arrives
as errors.ServiceUnavailable, which callers retry; a bug stays nameko's RemoteError."""
import pytest
import sqlalchemy.exc
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from shared import errors
from shared.rpc import rpc


class Flaky:
    name = "flaky_rpc"

    @rpc
    def database_away(self):
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("FATAL: the database system is shutting down"))

    @rpc
    def peer_unavailable(self):
        raise errors.ServiceUnavailable("user_service did not answer in time")

    @rpc
    def bug(self):
        raise KeyError("no such thing")


@pytest.fixture
def flaky(container_factory, config):
    container = container_factory(Flaky, config)
    container.start()
    with ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"]}, timeout=10) as cluster:
        yield cluster.flaky_rpc


def test_a_database_away_reaches_the_caller_as_service_unavailable(flaky):
    # Found by tests/faults/test_postgresql.py: notification_service asked user_service for an
    # address while PostgreSQL shut down, got RemoteError, and dead-lettered the event.
    with pytest.raises(errors.ServiceUnavailable) as unavailable:
        flaky.database_away()
    assert unavailable.value.details == {"dependency_error": "OperationalError"}
    assert "flaky_rpc cannot answer right now" in unavailable.value.message


def test_service_unavailable_and_bugs_arrive_as_they_were(flaky):
    with pytest.raises(errors.ServiceUnavailable) as unavailable:
        flaky.peer_unavailable()
    assert unavailable.value.message == "user_service did not answer in time"
    with pytest.raises(RemoteError) as bug:
        flaky.bug()
    assert bug.value.exc_type == "KeyError"
