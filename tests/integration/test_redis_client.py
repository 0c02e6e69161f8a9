"""shared.redis_client: nameko-redis's provider with the suite's connection policy, against the real Redis."""
import socket
import time

import eventlet
import pytest
import redis
from nameko.testing.services import dummy, entrypoint_hook

from shared.redis_client import RedisClient


class Greetings:
    """A domain object over the client, as the services' providers hand out."""

    def __init__(self, client):
        self.client = client

    def greet(self, name):
        return self.client.incr(f"greetings:{name}")


class GreetingStore(RedisClient):
    def wrap(self, client):
        return Greetings(client)


class TinyService:
    name = "tiny"
    raw = RedisClient(max_connections=2, pool_timeout=0.2)
    greetings = GreetingStore()

    @dummy
    def roundtrip(self, key, value):
        self.raw.set(key, value)
        return self.raw.get(key)

    @dummy
    def greet(self, name):
        return self.greetings.greet(name)

    @dummy
    def hold_connections(self, count):
        """Takes `count` connections from the pool at once (pipelines in transaction hold one each)."""
        held = [self.raw.connection_pool.get_connection() for _ in range(count)]
        for connection in held:
            self.raw.connection_pool.release(connection)
        return len(held)


@pytest.fixture
def tiny(container_factory, redis_url):
    container = container_factory(TinyService, {"REDIS_URL": redis_url, "AMQP_URI": "memory://"})
    container.start()
    return container


def test_workers_get_a_client_of_the_configured_url_that_decodes_text(tiny, redis_url):
    with entrypoint_hook(tiny, "roundtrip") as roundtrip:
        assert roundtrip("redis-client-test", "café") == "café"
    assert redis.Redis.from_url(redis_url).get("redis-client-test") == "café".encode()


def test_a_subclass_hands_workers_its_domain_object(tiny, redis_url):
    redis.Redis.from_url(redis_url).delete("greetings:ada")
    with entrypoint_hook(tiny, "greet") as greet:
        assert [greet("ada"), greet("ada")] == [1, 2]


def test_the_pool_is_bounded_and_a_command_waits_only_briefly_for_a_connection(tiny):
    with entrypoint_hook(tiny, "hold_connections") as hold:
        assert hold(2) == 2
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError, match="No connection available"):
            hold(3)
        assert time.monotonic() - started < 1.0


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers: a Redis hung or behind a black hole."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


def test_a_redis_that_does_not_answer_is_an_error_within_seconds_not_a_hang(container_factory, silent_server):
    container = container_factory(TinyService, {"REDIS_URL": silent_server, "AMQP_URI": "memory://"})
    container.start()
    started = time.monotonic()
    with eventlet.Timeout(10, AssertionError("the command hung")), entrypoint_hook(container, "roundtrip") as roundtrip:
        with pytest.raises(redis.TimeoutError):
            roundtrip("k", "v")
    assert time.monotonic() - started < 3.0, "a read waits at most 1 s"
