"""Image status in Redis, and long-poll wake-ups.

Redis is a cache and a doorbell, never the record: PostgreSQL holds the status. Every change is
written to `image-status:<id>` (the status answer itself, with its owner, so that a long-poll
needs no database connection at all) and published on one channel. Each upload_service process
keeps ONE subscription to that channel and wakes its local waiters (an eventlet Event per
long-poll), so a thousand long-polls cost one Redis connection, and a completion is seen within
milliseconds by whichever process holds the poll. A miss (Redis restarted or flushed) is read
from the database and written back; with Redis away, waiters fall back to polling the database.
"""
import json
import logging
from collections import defaultdict
from contextlib import contextmanager

import eventlet
import redis
from eventlet.event import Event

from shared.outage import Outage
from shared.tracing import unsampled
from upload_service.models import FINAL_STATUSES
from upload_service.schemas import status_to_dict

log = logging.getLogger(__name__)

CHANNEL = "image-status"
# A final status never changes: kept a week. An open one is kept briefly, so that a change whose
# cache write was lost (Redis unreachable for a moment) is read from the database soon after.
FINAL_TTL_SECONDS = 7 * 24 * 3600
OPEN_TTL_SECONDS = 60
# A deleted image's entry: kept longer than any request that read the row before the delete.
GONE = "deleted"
TOMBSTONE_TTL_SECONDS = 300
FALLBACK_POLL_SECONDS = 1.0
RECONNECT_SECONDS = 1.0


def _key(image_id):
    return f"image-status:{image_id}"


class StatusCache:
    def __init__(self, client):
        self.client = client

    def get(self, image_id):
        """`(owner_id, status answer)`; `GONE` for a deleted image; None when Redis does not know
        (or is away)."""
        try:
            cached = self.client.get(_key(image_id))
        except redis.RedisError as exc:
            log.warning("status cache unavailable: %s", exc)
            return None
        if cached is None:
            return None
        if cached == GONE:
            return GONE
        try:
            entry = json.loads(cached)
            return entry["owner"], entry["status"]
        except (ValueError, KeyError, TypeError):
            return None  # written by an older version: read from the database

    def set(self, image, announce=True):
        """Caches `image`'s status answer (a change of status); `announce` rings the doorbell."""
        self._write(image, announce=announce, only_if_missing=False)

    def write_back(self, image):
        """Caches what a miss read from the database, unless something newer got there first (a
        change, or the tombstone of a delete that committed after that read); returns the answer."""
        return self._write(image, announce=False, only_if_missing=True)

    def forget(self, image_id):
        """After a delete: a tombstone (so that a concurrent write-back cannot bring the image
        back), and the doorbell, so that its long-polls answer 404 now."""
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(_key(image_id), GONE, ex=TOMBSTONE_TTL_SECONDS)
            pipe.publish(CHANNEL, f"{image_id} {GONE}")
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("status cache unavailable: %s", exc)

    def _write(self, image, announce, only_if_missing):
        body = status_to_dict(image)
        entry = json.dumps({"owner": str(image.user_id), "status": body}, separators=(",", ":"))
        ttl = FINAL_TTL_SECONDS if image.status in FINAL_STATUSES else OPEN_TTL_SECONDS
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(_key(image.id), entry, ex=ttl, nx=only_if_missing)
            if announce:
                pipe.publish(CHANNEL, f"{image.id} {image.status}")
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("status cache unavailable: %s", exc)
        return body


class StatusNotifier:
    """The process's single subscription, fanning status changes out to local waiters."""

    def __init__(self, client):
        self.client = client
        self.waiters = defaultdict(set)
        self.subscribed = False
        self._running = False
        # Long-polls fall back to re-reading the status meanwhile; one line says so per outage.
        self.outage = Outage("the status subscription", "Redis")

    def run(self):
        with unsampled():
            self._listen_forever()

    def _listen_forever(self):
        self._running = True
        while self._running:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                self.subscribed = True
                self.outage.recovered(logger=log)
                for message in pubsub.listen():
                    self._deliver(message)
            except (redis.RedisError, OSError) as exc:
                if self._running:
                    self.outage.failed(exc, retry_in=RECONNECT_SECONDS, logger=log)
            finally:
                self.subscribed = False
                try:
                    pubsub.close()
                except (redis.RedisError, OSError):
                    pass
            eventlet.sleep(RECONNECT_SECONDS)

    def stop(self):
        self._running = False

    def _deliver(self, message):
        data = message.get("data")
        if message.get("type") != "message" or not isinstance(data, str):
            return
        image_id, _, status = data.partition(" ")
        # Long-polls return early only when an image is done or gone; other changes need no wake-up.
        if status in FINAL_STATUSES or status == GONE:
            self.notify(image_id)

    def notify(self, image_id):
        for event in self.waiters.pop(image_id, ()):
            if not event.ready():
                event.send()

    @contextmanager
    def listening(self, image_id):
        """Register before re-reading the status, so that no change between the read and the wait
        is missed. Yields a `wait(seconds)` that returns early on a change."""
        event = Event()
        self.waiters[image_id].add(event)

        def wait(seconds):
            # Without a live subscription nobody will ring: wake up now and then to re-read.
            step = seconds if self.subscribed else min(seconds, FALLBACK_POLL_SECONDS)
            with eventlet.Timeout(step, False):
                event.wait()
            return event.ready()

        try:
            yield wait
        finally:
            listeners = self.waiters.get(image_id)
            if listeners is not None:
                listeners.discard(event)
                if not listeners:
                    self.waiters.pop(image_id, None)
