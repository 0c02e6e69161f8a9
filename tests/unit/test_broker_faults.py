"""An ack or requeue on a connection the broker dropped is ignored, not raised into the container."""
import amqp.exceptions
import kombu.exceptions
import pytest
from nameko.messaging import QueueConsumer

from shared import broker_faults

broker_faults.install()  # as the suite's container class does


class Message:
    def __init__(self, error=None, connected=True):
        self.error = error
        self.channel = type("Channel", (), {"connection": object() if connected else None})()
        self.settled = []

    def ack(self):
        self.settled.append("ack")
        if self.error:
            raise self.error

    def requeue(self):
        self.settled.append("requeue")
        if self.error:
            raise self.error


LOST = [
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    kombu.exceptions.OperationalError("connection closed"),
    amqp.exceptions.RecoverableConnectionError("connection already closed"),
]


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("settle", ["ack_message", "requeue_message"])
def test_a_lost_connection_is_not_raised(settle, error):
    message = Message(error)
    getattr(QueueConsumer, settle)(None, message)
    assert message.settled  # it was tried


@pytest.mark.parametrize("settle", ["ack_message", "requeue_message"])
def test_other_errors_still_raise(settle):
    with pytest.raises(ValueError):
        getattr(QueueConsumer, settle)(None, Message(ValueError("a bug")))


def test_a_message_on_a_closed_channel_is_left_to_the_broker():
    message = Message(connected=False)
    QueueConsumer.ack_message(None, message)
    assert message.settled == []


def test_settles_normally():
    message = Message()
    QueueConsumer.ack_message(None, message)
    QueueConsumer.requeue_message(None, message)
    assert message.settled == ["ack", "requeue"]


# -- RPC replies ------------------------------------------------------------------------------------

import logging  # noqa: E402
import time  # noqa: E402

import eventlet  # noqa: E402
from nameko import rpc as nameko_rpc  # noqa: E402
from nameko.rpc import RpcConsumer  # noqa: E402

from shared.outage import Outage  # noqa: E402


class RpcRequest(Message):
    properties = {"content_type": "application/json", "reply_to": "rpc.reply-caller", "correlation_id": "c1"}
    delivery_info = {"routing_key": "upload_service.renew_processing"}


class Consumer:
    """What RpcConsumer.handle_result needs of its owner: the container's config, the queue consumer."""

    def __init__(self, publish_timeout=1):
        self.container = type("Container", (), {"config": {
            "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:1//", "PUBLISH_TIMEOUT_SECONDS": publish_timeout,
        }})()
        self.settled = []
        self.queue_consumer = type("QueueConsumer", (), {"ack_message": lambda _, m: self.settled.append("ack")})()


def publisher_that(behaviour):
    class Publisher:
        def __init__(self, *args, **kwargs):
            pass

        def publish(self, payload, **kwargs):
            behaviour(payload)
    return Publisher


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
def test_a_reply_the_broker_cannot_take_is_dropped_not_raised(monkeypatch, caplog, error):
    def refuse(payload):
        raise error

    monkeypatch.setattr(nameko_rpc.Responder, "publisher_cls", publisher_that(refuse))
    consumer = Consumer()
    with caplog.at_level(logging.WARNING, logger="shared.broker_faults"):
        result, exc_info = RpcConsumer.handle_result(consumer, RpcRequest(), {"renewed": True}, None)
    assert (result, exc_info) == ({"renewed": True}, None)
    assert consumer.settled == ["ack"], "a dropped reply still settles its request"
    assert "upload_service.renew_processing could not be sent" in caplog.text


def test_a_reply_stuck_behind_the_broker_is_dropped_at_the_publish_timeout(monkeypatch):
    monkeypatch.setattr(nameko_rpc.Responder, "publisher_cls", publisher_that(lambda payload: eventlet.sleep(30)))
    consumer = Consumer(publish_timeout=0.3)
    started = time.monotonic()
    RpcConsumer.handle_result(consumer, RpcRequest(), "late", None)
    assert time.monotonic() - started < 1.5
    assert consumer.settled == ["ack"]


def test_a_reply_that_is_sent_is_acknowledged_once(monkeypatch):
    sent = []
    monkeypatch.setattr(nameko_rpc.Responder, "publisher_cls", publisher_that(sent.append))
    consumer = Consumer()
    RpcConsumer.handle_result(consumer, RpcRequest(), 42, None)
    assert sent == [{"result": 42, "error": None}]
    assert consumer.settled == ["ack"]


def test_a_reply_that_cannot_be_serialised_is_still_a_bug(monkeypatch):
    def broken(payload):
        raise TypeError("not a broker problem")

    monkeypatch.setattr(nameko_rpc.Responder, "publisher_cls", publisher_that(broken))
    with pytest.raises(TypeError):
        RpcConsumer.handle_result(Consumer(), RpcRequest(), 1, None)


# -- one warning per outage ---------------------------------------------------------------------------


def test_an_outage_is_reported_once_and_its_end_once(caplog):
    outage = Outage("upload_service's message consumer", "the broker")
    with caplog.at_level(logging.DEBUG, logger="shared.outage"):
        for interval in (1, 2, 3, 4, 5, 5, 5):
            outage.failed(ConnectionRefusedError(111, "ECONNREFUSED"), retry_in=interval)
        outage.recovered()
        outage.recovered()  # a reconnection without an outage says nothing
    levels = [record.levelname for record in caplog.records]
    assert levels.count("WARNING") == 1
    assert levels.count("INFO") == 1
    assert "lost the broker" in caplog.records[0].getMessage()
    assert "has the broker back after" in caplog.records[-1].getMessage()

