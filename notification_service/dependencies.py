"""A record of the emails already sent, so that a redelivered event does not send a second one."""
import logging

import redis
from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)

# Long enough to cover any redelivery or replay from the dead-letter queue.
SENT_TTL_SECONDS = 30 * 24 * 3600


class SentLog:
    """Keyed by the email's Message-ID, which is derived from the event (welcome.<user id>,
    image-ready.<image id>...). Redis away: we send anyway — a rare duplicate beats a lost email."""

    def __init__(self, client):
        self.client = client

    @staticmethod
    def _key(message_id):
        return f"mail-sent:{message_id}"

    def already_sent(self, message_id):
        try:
            return bool(self.client.exists(self._key(message_id)))
        except redis.RedisError as exc:
            log.warning("sent-mail log unavailable: %s", exc)
            return False

    def mark_sent(self, message_id):
        try:
            self.client.set(self._key(message_id), "1", ex=SENT_TTL_SECONDS)
        except redis.RedisError as exc:
            log.warning("sent-mail log unavailable: %s", exc)


class SentMail(DependencyProvider):
    def setup(self):
        client = redis.Redis.from_url(
            self.container.config["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1, decode_responses=True
        )
        self.log = SentLog(client)

    def get_dependency(self, worker_ctx):
        return self.log
