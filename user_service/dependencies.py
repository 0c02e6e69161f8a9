"""user_service's DependencyProviders: each hands a worker a small domain-level object."""
import logging

import redis
from nameko.extensions import DependencyProvider

from shared.redis_client import RedisClient
from shared.revocation import RevocationCache
from shared.settings import setting
from user_service.passwords import DummyHash
from user_service.tokens import TokenIssuer

log = logging.getLogger(__name__)


class Tokens(DependencyProvider):
    def setup(self):
        config = self.container.config
        self.issuer = TokenIssuer(
            setting(config, "JWT_PRIVATE_KEY_FILE"),
            issuer=setting(config, "JWT_ISSUER"),
            audience=setting(config, "JWT_AUDIENCE"),
            ttl_seconds=setting(config, "JWT_TTL_SECONDS"),
        )

    def get_dependency(self, worker_ctx):
        return self.issuer


class PasswordPolicy(DependencyProvider):
    """The bcrypt cost and the dummy hash used for unknown emails (computed once per process)."""

    def setup(self):
        self.rounds = setting(self.container.config, "BCRYPT_ROUNDS")
        self.dummy = DummyHash(self.rounds)

    def get_dependency(self, worker_ctx):
        return self


class LoginThrottle:
    """Counts failed logins per account in Redis. After `max_failures` within `window` seconds the
    account answers 429 until the window ends, so the lock always expires and cannot shut a user out
    for good. Redis being away disables throttling, never logins."""

    def __init__(self, client, max_failures, window):
        self.client = client
        self.max_failures = max_failures
        self.window = window

    @staticmethod
    def _key(email):
        return f"login-failures:{email.lower()}"

    def is_locked(self, email):
        try:
            return int(self.client.get(self._key(email)) or 0) >= self.max_failures
        except redis.RedisError as exc:
            log.warning("login throttle unavailable: %s", exc)
            return False

    def record_failure(self, email):
        try:
            pipe = self.client.pipeline()
            pipe.incr(self._key(email))
            pipe.expire(self._key(email), self.window, nx=True)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("login throttle unavailable: %s", exc)

    def reset(self, email):
        try:
            self.client.delete(self._key(email))
        except redis.RedisError as exc:
            log.warning("login throttle unavailable: %s", exc)

    def ping(self):
        self.client.ping()


class LoginFailures(RedisClient):
    """The login throttle over Redis, with `LOGIN_MAX_FAILURES` and `LOGIN_LOCK_SECONDS`."""

    def wrap(self, client):
        config = self.container.config
        return LoginThrottle(client, setting(config, "LOGIN_MAX_FAILURES"), setting(config, "LOGIN_LOCK_SECONDS"))


class Revocations(RedisClient):
    """The Redis mirror of revoked tokens, which this service writes (see shared.revocation)."""

    def wrap(self, client):
        return RevocationCache(client)
