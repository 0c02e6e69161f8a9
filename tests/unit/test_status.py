"""upload_service/status.py with Redis replaced by a dict: the cache's rules (TTLs, write-back that
never overwrites something newer, tombstones) and the long-poll doorbell."""
import datetime as dt
import json
import types
import uuid

import eventlet
import pytest
import redis

from upload_service import status
from upload_service.status import GONE, StatusCache, StatusNotifier


class DictRedis:
    """The few commands StatusCache sends, on a dict; `down=True` fails them all as Redis away would."""

    def __init__(self, down=False):
        self.values, self.ttls, self.published, self.down = {}, {}, [], down

    def get(self, key):
        self._check()
        return self.values.get(key)

    def pipeline(self, transaction=False):
        return Pipeline(self)

    def _check(self):
        if self.down:
            raise redis.ConnectionError("Connection refused")


class Pipeline:
    def __init__(self, client):
        self.client, self.commands = client, []

    def set(self, key, value, ex=None, nx=False):
        self.commands.append(("set", key, value, ex, nx))

    def publish(self, channel, message):
        self.commands.append(("publish", channel, message))

    def execute(self):
        self.client._check()
        for command in self.commands:
            if command[0] == "set":
                _, key, value, ex, nx = command
                if not (nx and key in self.client.values):
                    self.client.values[key], self.client.ttls[key] = value, ex
            else:
                self.client.published.append(command[1:])


def image(state="queued", owner=None):
    now = dt.datetime(2026, 12, 4, tzinfo=dt.timezone.utc)
    return types.SimpleNamespace(
        id=uuid.uuid4(), user_id=owner or uuid.uuid4(), status=state, updated_at=now, created_at=now,
        original_filename="a.png", width=8, height=6, format="png", size_bytes=10, operations=[],
        output_path=None, output_width=None, output_height=None, output_format=None,
        output_size_bytes=None, error_code=None, error_message=None, error_details=None,
        variants=None, variant_outputs=None,
    )


@pytest.fixture
def client():
    return DictRedis()


def test_a_change_is_cached_with_its_owner_and_rings_the_doorbell(client):
    queued = image("queued")
    StatusCache(client).set(queued)
    owner, body = StatusCache(client).get(queued.id)
    assert owner == str(queued.user_id) and body["status"] == "queued"
    assert client.published == [(status.CHANNEL, f"{queued.id} queued")]
    assert client.ttls[f"image-status:{queued.id}"] == status.OPEN_TTL_SECONDS


def test_a_final_status_is_kept_a_week(client):
    failed = image("failed")
    failed.error_code, failed.error_message = "invalid_crop", "outside"
    StatusCache(client).set(failed, announce=False)
    assert client.ttls[f"image-status:{failed.id}"] == status.FINAL_TTL_SECONDS
    assert client.published == []


def test_a_write_back_never_overwrites_a_newer_change_or_a_tombstone(client):
    cache = StatusCache(client)
    stale = image("queued")
    newer = types.SimpleNamespace(**{**vars(stale), "status": "completed"})
    cache.set(newer)
    cache.write_back(stale)
    assert cache.get(stale.id)[1]["status"] == "completed"
    cache.forget(stale.id)
    cache.write_back(stale)
    assert cache.get(stale.id) is GONE
    assert client.published[-1] == (status.CHANNEL, f"{stale.id} {GONE}")


def test_an_unreadable_entry_is_a_miss(client):
    image_id = uuid.uuid4()
    client.values[f"image-status:{image_id}"] = json.dumps({"something": "else"})
    assert StatusCache(client).get(image_id) is None


def test_redis_away_is_a_miss_and_a_lost_write_not_an_error():
    cache = StatusCache(DictRedis(down=True))
    queued = image()
    assert cache.get(queued.id) is None
    cache.set(queued)
    cache.forget(queued.id)
    assert cache.write_back(queued)["status"] == "queued"  # the answer still comes from the row


# -- the doorbell ------------------------------------------------------------------------------------


def test_a_final_status_wakes_the_long_polls_of_that_image_only():
    notifier = StatusNotifier(client=None)
    notifier.subscribed = True
    with notifier.listening("a") as wait_a, notifier.listening("b") as wait_b:
        eventlet.spawn_after(0.05, notifier._deliver, {"type": "message", "data": "a completed"})
        started = eventlet.hubs.get_hub().clock()
        assert wait_a(5) is True
        assert eventlet.hubs.get_hub().clock() - started < 1
        assert wait_b(0.1) is False
    assert not notifier.waiters  # nobody left registered


def test_a_change_that_is_not_final_wakes_nobody():
    notifier = StatusNotifier(client=None)
    notifier.subscribed = True
    with notifier.listening("a") as wait:
        eventlet.spawn_after(0.01, notifier._deliver, {"type": "message", "data": "a processing"})
        assert wait(0.2) is False


def test_without_a_subscription_a_long_poll_wakes_now_and_then_to_read_again():
    notifier = StatusNotifier(client=None)
    assert notifier.subscribed is False
    with notifier.listening("a") as wait:
        started = eventlet.hubs.get_hub().clock()
        assert wait(30) is False
        assert eventlet.hubs.get_hub().clock() - started < status.FALLBACK_POLL_SECONDS + 0.5
