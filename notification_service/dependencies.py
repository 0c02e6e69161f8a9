"""A record of the emails already sent, so that a redelivered event does not send a second one."""
import logging
import uuid
from dataclasses import dataclass

import redis

from shared.redis_client import RedisClient

log = logging.getLogger(__name__)

# Long enough to cover any redelivery or replay from the dead-letter queue.
SENT_TTL_SECONDS = 30 * 24 * 3600
# Longer than a send can take (each SMTP step is bounded by SMTP_TIMEOUT_SECONDS): a reservation whose
# worker died mid-send lapses after this, and the redelivered event sends the email.
RESERVATION_SECONDS = 120
SENDING_PREFIX = "sending:"
# A late reply (a busy host) is asked again before we send without a reservation.
RESERVE_ATTEMPTS = 3
# Deletes a reservation only if it is still the caller's (it may have lapsed and been taken since).
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Reservation:
    state: str  # "mine": send it now; "sent": it went before; "elsewhere": another worker is sending it
    token: str = ""


class SentLog:
    """Keyed by the email's Message-ID, which is derived from the event (welcome.<user id>,
    image-ready.<image id>...). A worker reserves an email before it sends it (SET NX), so that two
    deliveries of one event at the same moment (a publish the broker took twice) send it once.
    Redis away: we send anyway — a rare duplicate beats a lost email."""

    def __init__(self, client):
        self.client = client
        self._release = client.register_script(RELEASE_SCRIPT)

    @staticmethod
    def _key(message_id):
        return f"mail-sent:{message_id}"

    def reserve(self, message_id):
        token = SENDING_PREFIX + uuid.uuid4().hex
        for attempt in range(RESERVE_ATTEMPTS):
            try:
                if self.client.set(self._key(message_id), token, nx=True, ex=RESERVATION_SECONDS):
                    return Reservation("mine", token)
                holder = self.client.get(self._key(message_id))
            except redis.TimeoutError as exc:
                # The reply was late, not necessarily the command: our SET may have gone through,
                # or failed against another worker's reservation. Asking again tells which.
                log.warning("sent-mail log slow (%s): asking again", exc)
                continue
            except redis.RedisError as exc:
                log.warning("sent-mail log unavailable: %s", exc)
                return Reservation("mine")
            if holder == token:  # ours, from the attempt whose reply was lost
                return Reservation("mine", token)
            if holder is None:  # the reservation lapsed this instant: ask again on the next delivery
                return Reservation("elsewhere")
            return Reservation("elsewhere" if holder.startswith(SENDING_PREFIX) else "sent")
        log.warning("sent-mail log unavailable: no answer in %d attempts", RESERVE_ATTEMPTS)
        return Reservation("mine")

    def mark_sent(self, message_id):
        try:
            self.client.set(self._key(message_id), "sent", ex=SENT_TTL_SECONDS)
        except redis.RedisError as exc:
            log.warning("sent-mail log unavailable: %s", exc)

    def release(self, message_id, reservation):
        """Gives up a reservation without sending (the send failed): the next delivery sends it."""
        if not reservation.token:
            return
        try:
            self._release(keys=[self._key(message_id)], args=[reservation.token])
        except redis.RedisError as exc:
            log.warning("sent-mail log unavailable: %s (the reservation lapses by itself)", exc)


class SentMail(RedisClient):
    def wrap(self, client):
        return SentLog(client)
