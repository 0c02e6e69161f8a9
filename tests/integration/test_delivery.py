"""What a handler learns about its message from the real broker (shared/delivery.py)."""
import eventlet
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from shared.delivery import Delivery, event_handler
from tests.conftest import wait_until

SEEN = []


class Listener:
    name = "delivery_listener"

    delivery = Delivery()

    @event_handler("somewhere", "happened")
    def on_happened(self, payload):
        SEEN.append(self.delivery.redelivered)
        if len(SEEN) == 1:
            eventlet.sleep(60)  # the first worker "dies" with the message in hand


def test_a_message_whose_worker_died_comes_back_marked_redelivered(container_factory, config):
    SEEN.clear()
    first = container_factory(Listener, config)
    first.start()
    event_dispatcher(config)("somewhere", "happened", {"n": 1})
    wait_until(lambda: SEEN == [False], message="first delivery")

    first.kill()  # no acknowledgement: the broker takes the message back
    second = container_factory(Listener, config)
    with entrypoint_waiter(second, "on_happened"):
        second.start()
    assert SEEN == [False, True]

    with entrypoint_waiter(second, "on_happened"):
        event_dispatcher(config)("somewhere", "happened", {"n": 2})
    assert SEEN == [False, True, False], "a new message is not"
