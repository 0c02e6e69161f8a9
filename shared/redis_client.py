"""Redis for the services: nameko-redis's `Redis` provider, with the suite's one connection policy.

nameko-redis reads its URL from `REDIS_URIS[key]` and hands workers the raw client. The suite needs
a little more, so `RedisClient` subclasses it:
- the URL is the `REDIS_URL` setting (shared/settings.py), one for every service;
- every connection has the same short timeouts: Redis is a cache and a doorbell here, so when it is
  away a request must learn it within a second and go on without it, never hang;
- connections come from a bounded pool: a thousand long-polls checking at once wait briefly for one
  of `max_connections` instead of opening a thousand (redis-py's default pool allows 2**31);
- the client exists from `setup()` (redis-py connects lazily), so that providers holding one as a
  sub-extension can use it in their own `setup()`;
- a subclass hands workers a small domain object instead of the raw client by overriding `wrap`.
"""
import nameko_redis
import redis

from shared.settings import setting

# Read and connect timeouts of every command connection; how often an idle pooled connection is
# checked before use (a Redis restart otherwise fails the first command on each stale connection).
CONNECTION_OPTIONS = {"socket_timeout": 1, "socket_connect_timeout": 1, "health_check_interval": 10}


def connect(url, max_connections=10, pool_timeout=5, **options):
    """A client with the suite's policy; `options` override it (a subscriber blocks on reads between
    messages, so it passes `socket_timeout=None`)."""
    options = {"decode_responses": True, **CONNECTION_OPTIONS, **options}
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=pool_timeout, **options)
    return redis.Redis(connection_pool=pool)


class RedisClient(nameko_redis.Redis):
    def __init__(self, max_connections=10, pool_timeout=5, **options):
        super().__init__("REDIS_URL", **options)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout  # seconds a command waits for a free pooled connection

    def setup(self):
        self.redis_uri = setting(self.container.config, "REDIS_URL")
        self.client = connect(self.redis_uri, self.max_connections, self.pool_timeout, **self.options)
        self.wrapped = self.wrap(self.client)

    def start(self):
        pass  # the client exists from setup(), see above

    def wrap(self, client):
        """What workers get: the client itself, or a domain object over it."""
        return client

    def stop(self):
        self._disconnect()  # the workers are done by now
        super().stop()

    def kill(self):
        self._disconnect()
        super().kill()

    def _disconnect(self):
        if self.client is not None:  # stop() and kill() may both come, in either order
            self.client.connection_pool.disconnect()

    def get_dependency(self, worker_ctx):
        return self.wrapped
