"""shared.delivery.RetryingEventHandler: a delayed retry that cannot be published while the broker is away
sends its message back to its queue instead of killing the container or losing the message."""
import kombu.exceptions
import pytest

from shared import delivery


class QueueConsumer:
    def __init__(self):
        self.settled = []

    def ack_message(self, message):
        self.settled.append("ack")

    def requeue_message(self, message):
        self.settled.append("requeue")


class BackoffPublisher:
    def __init__(self, error=None):
        self.error = error
        self.published = 0

    def republish(self, backoff, message, target_queue):
        if self.error is not None:
            raise self.error
        self.published += 1


class Message:
    headers = {}
    payload = {"image_id": "i1"}


def handler(backoff_publisher):
    event_handler = delivery.RetryingEventHandler("upload_service", "image_uploaded")
    event_handler.container = type("Container", (), {"config": {"AMQP_URI": "pyamqp://127.0.0.1:1//"}})()
    event_handler.queue = type("Queue", (), {"name": "evt-upload_service-image_uploaded--process_service.handle"})()
    event_handler.queue_consumer = QueueConsumer()
    event_handler.backoff_publisher = backoff_publisher
    return event_handler


def retried():
    try:
        raise delivery.Retry()
    except delivery.Retry as exc:
        return (type(exc), exc, exc.__traceback__)


WORKER = type("WorkerContext", (), {"call_id_stack": ["process_service.handle.1"]})()


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(delivery, "REQUEUE_PAUSE_SECONDS", 0)


@pytest.mark.parametrize("error", [
    kombu.exceptions.OperationalError("[Errno 111] ECONNREFUSED"),
    ConnectionResetError(104, "Connection reset by peer"),
], ids=lambda e: type(e).__name__)
def test_a_retry_that_cannot_be_published_requeues_its_message(error):
    event_handler = handler(BackoffPublisher(error))
    event_handler.handle_result(Message(), WORKER, None, retried())
    assert event_handler.queue_consumer.settled == ["requeue"], "not acknowledged: the message must not be lost"


def test_a_published_retry_acknowledges_the_original():
    publisher = BackoffPublisher()
    event_handler = handler(publisher)
    event_handler.handle_result(Message(), WORKER, None, retried())
    assert publisher.published == 1
    assert event_handler.queue_consumer.settled == ["ack"]


def test_other_errors_of_the_retry_still_raise():
    event_handler = handler(BackoffPublisher(ValueError("a bug")))
    with pytest.raises(ValueError):
        event_handler.handle_result(Message(), WORKER, None, retried())
