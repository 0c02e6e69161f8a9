"""A broker outage meets a service's container from the inside: an RPC reply or a delayed retry that
cannot be published, consumers that must reconnect, and a container that dies anyway.

Each test runs nameko containers in this process against a private RabbitMQ node it stops and starts
(tests/support/servers.py), with the suite's own container class and patches."""
import logging
import os
import socket
import time

import eventlet
import pytest
from kombu import Connection, Exchange, Producer
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy

from shared import delivery
from shared.container import ServiceContainer
from shared.http import http
from tests.support.processes import free_port
from tests.support.processes import port_open
from tests.support.servers import RabbitNode

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(os.geteuid() != 0, reason="the private RabbitMQ node runs as its own OS user: needs root"),
]

CONTAINER_CLS = "shared.container.ServiceContainer"


def wait_for(predicate, timeout, message, interval=0.1):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        eventlet.sleep(interval)


class RecordingContainer(ServiceContainer):
    """Records the end of the process instead of ending this one (the test's)."""

    kill_deadline_seconds = 2
    ended = []

    def end_process(self, reason):
        RecordingContainer.ended.append((time.monotonic(), reason))


@pytest.fixture(scope="module")
def rabbit():
    with RabbitNode() as node:
        yield node


@pytest.fixture
def broker(rabbit):
    yield rabbit
    if not port_open(rabbit.port):
        rabbit.start_app()


@pytest.fixture
def containers():
    """Starts containers of the suite's class, which would end this process when one dies."""
    RecordingContainer.ended.clear()
    started = []

    def start(service_cls, config):
        container = RecordingContainer(service_cls, {"SERVICE_CONTAINER_CLS": CONTAINER_CLS, **config})
        container.start()
        started.append(container)
        return container

    yield start
    for container in started:
        if not container._died.ready():
            container.kill()


def alive(container):
    return not container._being_killed and not container._died.ready() and not RecordingContainer.ended


def lost_broker_warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "lost the broker" in r.getMessage()]


# -- an RPC reply during an outage --------------------------------------------------------------------


class Replier:
    name = "replier"

    @rpc
    def slow_echo(self, value, seconds):
        eventlet.sleep(seconds)
        return value


def publish_rpc_request(amqp_uri, routing_key, args):
    with Connection(amqp_uri) as connection:
        Producer(connection).publish(
            {"args": args, "kwargs": {}},
            exchange=Exchange("nameko-rpc", type="topic", durable=True),
            routing_key=routing_key, reply_to="a-caller-that-left", correlation_id="c1", serializer="json",
        )


def test_an_rpc_reply_that_cannot_be_sent_is_dropped_and_the_service_lives_through_the_outage(
        broker, containers, caplog):
    caplog.set_level(logging.INFO)
    container = containers(Replier, {"AMQP_URI": broker.amqp_uri()})
    publish_rpc_request(broker.amqp_uri(), "replier.slow_echo", ["first", 2])
    eventlet.sleep(0.5)  # the method is running
    broker.stop_app()
    wait_for(lambda: "could not be sent" in caplog.text, 30, "the reply was neither sent nor dropped")
    eventlet.sleep(12)  # several reconnection attempts
    assert alive(container), "a reply that could not be sent killed the container"
    assert len(lost_broker_warnings(caplog)) == 1, [r.getMessage() for r in lost_broker_warnings(caplog)]

    broker.start_app()
    with ClusterRpcProxy({"AMQP_URI": broker.amqp_uri()}, timeout=30) as cluster:
        assert cluster.replier.slow_echo("second", 0) == "second"
    assert alive(container)
    assert "has the broker back after" in caplog.text
    assert len(lost_broker_warnings(caplog)) == 1, "one warning per outage, not per try"


# -- a delayed retry during an outage ----------------------------------------------------------------


class Flaky:
    name = "flaky"
    calls = []

    @delivery.retrying_event_handler("source", "ping")
    def on_ping(self, payload):
        Flaky.calls.append(payload["n"])
        if len(Flaky.calls) == 1:
            eventlet.sleep(2)  # the broker goes away meanwhile
            raise delivery.Retry()


def test_a_retry_that_cannot_be_scheduled_is_delivered_again_after_the_outage(broker, containers):
    Flaky.calls.clear()
    container = containers(Flaky, {"AMQP_URI": broker.amqp_uri()})
    event_dispatcher({"AMQP_URI": broker.amqp_uri()})("source", "ping", {"n": 1})
    wait_for(lambda: Flaky.calls, 10, "the event never reached its handler")
    broker.stop_app()
    eventlet.sleep(8)  # the retry's publish gives up, the consumer keeps trying to reconnect
    assert alive(container), "a retry that could not be published killed the container"
    broker.start_app()
    wait_for(lambda: len(Flaky.calls) == 2, 30, lambda: f"the message was lost: handled {Flaky.calls}")
    eventlet.sleep(2)
    assert Flaky.calls == [1, 1], "delivered again exactly once"
    assert alive(container)


# -- a container that dies anyway ----------------------------------------------------------------------


class Web:
    name = "web"

    @http("GET", "/ping")
    def ping(self, request):
        return {"pong": True}

    @rpc
    def idle(self):
        return None


def refused(port):
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_container_that_dies_during_an_outage_ends_its_process_at_once(broker, containers):
    port = free_port()
    container = containers(Web, {"AMQP_URI": broker.amqp_uri(), "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"})
    assert not refused(port)
    broker.stop_app()
    eventlet.sleep(1)
    web_server = next(e for e in container.subextensions if type(e).__name__ == "JsonWebServer")
    killed = time.monotonic()
    web_server._gt.kill(RuntimeError("a thread of the container died"))

    wait_for(lambda: refused(port), 2, "a dying container still accepts connections")
    # Its kill waits for the consumer, which waits for the broker: the process must not.
    wait_for(lambda: RecordingContainer.ended, 5, "the process would have lived on with a dying container")
    ended_at, reason = RecordingContainer.ended[0]
    assert ended_at - killed == pytest.approx(RecordingContainer.kill_deadline_seconds, abs=1)
    assert "a thread of the container died" in str(reason)
    assert not container._died.ready(), "nameko's own kill was still waiting for the broker"
    broker.start_app()
    with pytest.raises(RuntimeError):
        container.wait()
