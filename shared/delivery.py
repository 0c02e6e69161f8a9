"""Event delivery that survives trouble: delayed retries through the broker, and a dead-letter queue.

Policy (the same for every handler):
- A handler raises `Retry` for a transient failure (SMTP down, a service or database restarting).
  The message goes back to its queue through a delay queue (nameko-amqp-retry): after about
  1, 2, 4, 8, 16, 32 s (with jitter) — no hot loop, and no worker sleeps meanwhile.
- After `RETRY_LIMIT` retries the handler gives up in its own way (process_service marks the
  image failed, so its owner is told) and the message is kept in the `imageproc.dead-letters`
  queue, with the queue it came from and why, for an operator to inspect and replay
  (`python -m shared.deadletters`).
- A handler that fails for any other reason also dead-letters its message (nothing silently lost).
"""
import datetime as dt
import json
import logging
import math
from contextlib import contextmanager

import eventlet
from kombu import Connection, Exchange, Queue
from nameko.extensions import DependencyProvider
from nameko_amqp_retry import Backoff
from nameko_amqp_retry.events import EventHandler as AmqpRetryEventHandler

from shared import broker_faults
from shared.transient import TRANSIENT_ERRORS
from shared.settings import setting

log = logging.getLogger(__name__)


DEAD_LETTER_EXCHANGE = Exchange("imageproc.dead-letters", type="fanout", durable=True)
DEAD_LETTER_QUEUE = Queue("imageproc.dead-letters", exchange=DEAD_LETTER_EXCHANGE, durable=True)
BACKOFF_EXCHANGE = "backoff"  # nameko-amqp-retry's delay exchange
# A message whose delayed retry could not be published waits this long before it is requeued.
REQUEUE_PAUSE_SECONDS = 2


class Retry(Backoff):
    """Raise from a handler (`raise Retry() from exc`) to have its message delivered again later."""

    schedule = (1000, 2000, 4000, 8000, 16000, 32000)
    limit = 6
    random_sigma = 200


RETRY_LIMIT = Retry.limit


class RetryAfter(Retry):
    """A retry at a known time (`raise RetryAfter(seconds)`), e.g. when another worker's lease
    runs out. Counts against the same RETRY_LIMIT as `Retry`."""

    def __init__(self, seconds):
        super().__init__(f"retry in {seconds} s")
        self.seconds = seconds

    def next(self, message, backoff_exchange_name):
        super().next(message, backoff_exchange_name)  # enforces the limit, counts the attempt
        # Whole seconds, so that few delay queues exist (nameko-amqp-retry makes one per delay).
        self._next_expiration = int(max(1, math.ceil(self.seconds))) * 1000
        return self._next_expiration


class RetryingEventHandler(AmqpRetryEventHandler):
    """nameko's event handler with the retry policy above; failures end in the dead-letter queue."""

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        # A failure is kept before its message is acknowledged (nameko acks failed messages).
        if exc_info is not None and not isinstance(exc_info[1], Backoff):
            dead_letter(self.container.config, message.payload, self.queue.name, exc_info[1])
        try:
            result, exc_info = super().handle_result(message, worker_ctx, result, exc_info)
        except broker_faults.LOST_CONNECTION_ERRORS as exc:
            # The delayed retry could not be published (this runs after the worker's own error
            # handling: raised, it would kill the container). The message is not acknowledged:
            # it goes back to its queue, or the broker takes it back with the dead connection.
            log.warning("could not schedule the retry of a message from %s (%s): it is delivered again",
                        self.queue.name, exc)
            eventlet.sleep(REQUEUE_PAUSE_SECONDS)  # no hot loop while the broker takes no publishes
            self.queue_consumer.requeue_message(message)
            return result, exc_info
        if exc_info is not None and isinstance(exc_info[1], Backoff.Expired):
            # Retried RETRY_LIMIT times already (handlers normally give up before this happens).
            dead_letter(self.container.config, message.payload, self.queue.name, exc_info[1])
        return result, exc_info


retrying_event_handler = RetryingEventHandler.decorator


@contextmanager
def retry_when_unavailable(delivery, payload, on_give_up=None, transient=TRANSIENT_ERRORS):
    """Turns a transient failure into a delayed retry. On the last attempt the handler gives up:
    `on_give_up(exc)` runs (e.g. fail the image, so its owner hears of it) and the message goes to
    the dead-letter queue."""
    try:
        yield
    except transient as exc:
        if delivery.last_attempt:
            if on_give_up is not None:
                on_give_up(exc)
            delivery.dead_letter(payload, exc)
            return
        log.warning("transient failure, retry %d of %d: %s", delivery.retries + 1, RETRY_LIMIT, exc)
        raise Retry() from exc


def retries_so_far(headers):
    """How many times the broker has delayed this message for a retry (from its x-death headers)."""
    return sum(
        int(death.get("count", 0))
        for death in headers.get("x-death") or ()
        if death.get("exchange") == BACKOFF_EXCHANGE
    )


class DeliveryInfo:
    def __init__(self, retries, config, queue_name):
        self.retries = retries
        self.config = config
        self.queue_name = queue_name

    @property
    def last_attempt(self):
        return self.retries >= RETRY_LIMIT

    def dead_letter(self, payload, reason):
        dead_letter(self.config, payload, self.queue_name, reason)


class Delivery(DependencyProvider):
    """What a handler knows about the message it is handling: `self.delivery.retries`,
    `.last_attempt`, `.dead_letter(payload, reason)`. Read at injection time, before the tracing
    provider drops broker headers from the worker context."""

    def get_dependency(self, worker_ctx):
        queue = getattr(worker_ctx.entrypoint, "queue", None)
        return DeliveryInfo(
            retries_so_far(worker_ctx.data),
            self.container.config,
            queue.name if queue is not None else None,
        )


def dead_letter(config, payload, queue_name, reason):
    """Keeps a message an operator must look at: the payload as it was, where it came from, why."""
    headers = {
        "x-original-queue": queue_name or "",
        "x-error": f"{type(reason).__name__}: {reason}"[:1000] if isinstance(reason, BaseException) else str(reason),
        "x-dead-lettered-at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    try:
        with Connection(setting(config, "AMQP_URI"), connect_timeout=5) as connection:
            producer = connection.Producer()
            producer.publish(
                json.dumps(payload),
                exchange=DEAD_LETTER_EXCHANGE,
                routing_key="",
                headers=headers,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                declare=[DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE],
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.5, "interval_step": 1},
            )
        log.error("message from %s dead-lettered: %s", queue_name, headers["x-error"])
    except Exception as exc:  # noqa: BLE001 - the broker itself is away: say so loudly
        log.critical("could not dead-letter a message from %s (%s): %s", queue_name, headers["x-error"], exc)
