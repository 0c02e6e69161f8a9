"""An ack or requeue on a connection the broker dropped is ignored, not raised into the container."""
import amqp.exceptions
import kombu.exceptions
import pytest
from nameko.messaging import QueueConsumer

import shared  # noqa: F401  (installs the patch, as every service does)


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
