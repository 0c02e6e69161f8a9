"""Inspect and replay the dead-letter queue.

    python -m shared.deadletters list              # what is there, and why (leaves it there)
    python -m shared.deadletters replay [--limit N] # sends each back to the queue it came from

Also from `nameko shell --config config.yaml`:
    >>> from shared import deadletters
    >>> deadletters.peek(n.config)                  # list of {queue, error, at, payload}
    >>> deadletters.replay(n.config)                # returns how many were replayed
"""
import argparse
import json

from kombu import Connection, Exchange

from shared.config import load_config
from shared.delivery import DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE
from shared.settings import setting

DEFAULT_EXCHANGE = Exchange("", type="direct")


def _messages(connection, limit):
    queue = DEAD_LETTER_QUEUE(connection.default_channel)
    queue.declare()
    DEAD_LETTER_EXCHANGE(connection.default_channel).declare()
    for _ in range(limit):
        message = queue.get(no_ack=False)
        if message is None:
            return
        yield message


def _describe(message):
    headers = message.headers or {}
    return {
        "queue": headers.get("x-original-queue"),
        "error": headers.get("x-error"),
        "at": headers.get("x-dead-lettered-at"),
        "payload": json.loads(message.body),
    }


def peek(config, limit=100):
    """The dead letters, left in their queue."""
    with Connection(setting(config, "AMQP_URI")) as connection:
        seen = []
        messages = list(_messages(connection, limit))
        for message in messages:
            seen.append(_describe(message))
        for message in messages:
            message.requeue()
        return seen


def replay(config, limit=100):
    """Publishes each dead letter back to its original queue; acknowledges it only once it is sent."""
    replayed = 0
    with Connection(setting(config, "AMQP_URI")) as connection:
        producer = connection.Producer()
        for message in _messages(connection, limit):
            queue_name = (message.headers or {}).get("x-original-queue")
            if not queue_name:
                message.requeue()
                continue
            producer.publish(
                message.body,
                exchange=DEFAULT_EXCHANGE,
                routing_key=queue_name,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                mandatory=True,
            )
            message.ack()
            replayed += 1
    return replayed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    config = load_config()
    if args.action == "list":
        for letter in peek(config, args.limit):
            print(json.dumps(letter))
    else:
        print(f"replayed {replay(config, args.limit)} message(s)")


if __name__ == "__main__":
    main()
