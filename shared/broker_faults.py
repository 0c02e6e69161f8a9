"""Keeps a broker outage of any length from killing a service.

nameko 2.14 lets broker errors escape in places where nothing catches them but the container, and
the container then kills itself (and, while the broker is away, hangs in that kill for as long as the
outage lasts, see shared/container.py). Each place is patched here, once:

- Acks and requeues (`QueueConsumer.ack_message` / `requeue_message`) only ignore amqp's own
  `ConnectionError`. On a socket the broker closed they raise `ConnectionResetError` or kombu's
  `OperationalError`. Losing that ack is harmless: the broker already took the unacknowledged
  message back and delivers it again on the new connection, and every handler is idempotent.
- RPC replies (`RpcConsumer.handle_result`) are published after the worker's own error handling,
  with a bounded retry. A reply that cannot be sent (the broker went away while the method ran) is
  logged and dropped: the caller's own timeout and retry cover it, and every RPC here is
  idempotent. The publish is also bounded in time (PUBLISH_TIMEOUT_SECONDS): a broker in a
  resource alarm does not hold the worker for as long as the alarm lasts.
- Consumers (`QueueConsumer`, which also carries the RPC reply queues) reconnect forever, with a
  backoff capped at RECONNECT_MAX_SECONDS, and say so once per outage: one WARNING when the broker
  goes away, one INFO when they are consuming again, the tries in between at DEBUG. Only a
  connection or channel error restarts the loop; anything else is a bug and still ends the
  container (and its process, shared/container.py).

The delayed retries of event handlers are published the same way; shared/delivery.py covers them.

`install()` is called by the suite's container class (shared/container.py) before a container is
made, so every service run by `nameko run --config config.yaml` (and every test container made with
that configuration) has these patches.
"""
import logging
import time
from contextlib import contextmanager

import amqp.exceptions
import eventlet
import kombu.exceptions
from nameko.messaging import QueueConsumer
from nameko.rpc import RpcConsumer

from shared import deadline
from shared.outage import Outage
from shared.settings import setting

log = logging.getLogger(__name__)

# What a publish, ack or requeue raises when the connection went away under it.
LOST_CONNECTION_ERRORS = (
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    kombu.exceptions.OperationalError,
    OSError,
)

RECONNECT_FIRST_SECONDS = 1
RECONNECT_MAX_SECONDS = 5


class ReplyTimeout(Exception):
    """An RPC reply the broker did not take within the publish timeout."""


def _describe(exc):
    return f"{type(exc).__name__}: {exc}"


def _outage(consumer):
    if getattr(consumer, "_outage", None) is None:
        container = getattr(consumer, "container", None)
        name = getattr(container, "service_name", None) or "a service"
        consumer._outage = Outage(f"{name}'s message consumer", "the broker")
    return consumer._outage


# -- acks and requeues ------------------------------------------------------------------------------


def _settle_ignoring_lost_connection(settle, action):
    def settle_message(self, message):
        if not message.channel.connection:
            return  # the broker has already taken the message back
        try:
            settle(message)
        except LOST_CONNECTION_ERRORS as exc:
            log.warning(
                "could not %s a message: the broker connection was lost (%s); "
                "the broker delivers it again", action, exc.__class__.__name__,
            )
    settle_message.__name__ = f"{action}_message"
    settle_message.__doc__ = f"{action.capitalize()}s a message; a lost connection is logged, not raised."
    return settle_message


# -- consumers --------------------------------------------------------------------------------------


@contextmanager
def _establish_connection(self):
    """kombu's, with a shorter backoff: 1, 2, ... 5 s between tries, for ever."""
    with self.create_connection() as connection:
        connection.ensure_connection(
            self.on_connection_error,
            max_retries=None,
            interval_start=RECONNECT_FIRST_SECONDS,
            interval_step=1,
            interval_max=RECONNECT_MAX_SECONDS,
        )
        yield connection


def _on_connection_error(self, exc, interval):
    _outage(self).failed(exc, retry_in=interval, logger=log)


def _wrap_on_consume_ready(original):
    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        _outage(self).recovered(logger=log)
        return original(self, connection, channel, consumers, **kwargs)
    return on_consume_ready


def _run(self, _tokens=1, **kwargs):
    """kombu's `ConsumerMixin.run`, which restarts on a lost connection for ever, without a
    traceback per restart, and never faster than once a second."""
    connection = self.connection
    recoverable = (*connection.connection_errors, *connection.channel_errors, *LOST_CONNECTION_ERRORS)
    while not self.should_stop:
        started = time.monotonic()
        try:
            for _ in self.consume(limit=None, **kwargs):
                pass
        except recoverable as exc:
            if self.should_stop:
                break
            _outage(self).failed(exc, logger=log)
            eventlet.sleep(max(0.0, RECONNECT_FIRST_SECONDS - (time.monotonic() - started)))


# -- RPC replies ------------------------------------------------------------------------------------


def _wrap_rpc_handle_result(original):
    def handle_result(self, message, result, exc_info):
        seconds = setting(self.container.config, "PUBLISH_TIMEOUT_SECONDS")
        try:
            return deadline.call_within(seconds, ReplyTimeout(), original, self, message, result, exc_info)
        except (*LOST_CONNECTION_ERRORS, ReplyTimeout) as exc:
            log.warning(
                "the reply of %s could not be sent (%s): dropped; the caller's timeout and retry cover it",
                message.delivery_info.get("routing_key"), _describe(exc),
            )
            self.queue_consumer.ack_message(message)
            return result, exc_info
    handle_result.__doc__ = "Sends an RPC reply; one the broker cannot take is logged and dropped."
    return handle_result


def install():
    """Applies the patches above to nameko's classes (once)."""
    if getattr(QueueConsumer, "_imageproc_patched", False):
        return
    QueueConsumer.ack_message = _settle_ignoring_lost_connection(lambda m: m.ack(), "ack")
    QueueConsumer.requeue_message = _settle_ignoring_lost_connection(lambda m: m.requeue(), "requeue")
    QueueConsumer.establish_connection = _establish_connection
    QueueConsumer.on_connection_error = _on_connection_error
    QueueConsumer.on_consume_ready = _wrap_on_consume_ready(QueueConsumer.on_consume_ready)
    QueueConsumer.run = _run
    RpcConsumer.handle_result = _wrap_rpc_handle_result(RpcConsumer.handle_result)
    QueueConsumer._imageproc_patched = True
