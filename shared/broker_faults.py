"""Keeps a broker restart from killing a service.

nameko 2.14's `QueueConsumer.ack_message` / `requeue_message` only ignore amqp's own
`ConnectionError`. When RabbitMQ restarts while a worker is running, the worker's ack goes out on
a socket the broker has closed and raises `ConnectionResetError` (an OSError) or kombu's
`OperationalError` instead; that exception escapes into the container and the whole service
exits. Losing that ack is harmless: the broker already took the unacknowledged message back and
delivers it again on the new connection, and every handler here is idempotent (see
shared/delivery.py). So these errors are logged and ignored, like amqp's own.

Applied once, when `shared` is imported (every service imports it before nameko starts it).
"""
import logging

import amqp.exceptions
import kombu.exceptions
from nameko.messaging import QueueConsumer

log = logging.getLogger(__name__)

# What an ack or requeue raises when the connection went away under it.
LOST_CONNECTION_ERRORS = (
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    kombu.exceptions.OperationalError,
    OSError,
)


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


def install():
    """Replaces QueueConsumer's ack/requeue with versions that survive a lost connection."""
    if getattr(QueueConsumer, "_imageproc_patched", False):
        return
    QueueConsumer.ack_message = _settle_ignoring_lost_connection(lambda m: m.ack(), "ack")
    QueueConsumer.requeue_message = _settle_ignoring_lost_connection(lambda m: m.requeue(), "requeue")
    QueueConsumer._imageproc_patched = True
