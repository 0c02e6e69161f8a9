"""user_service's DependencyProviders: each hands a worker a small domain-level object."""
import logging
import time

import redis
from nameko.extensions import DependencyProvider

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


class LoginThrottle(DependencyProvider):
    """Counts failed logins per account in Redis. After `LOGIN_MAX_FAILURES` within
    `LOGIN_LOCK_SECONDS` the account answers 429 until the window ends, so the lock always expires
    and cannot shut a user out for good. Redis being away disables throttling, never logins."""

    def setup(self):
        config = self.container.config
        self.max_failures = setting(config, "LOGIN_MAX_FAILURES")
        self.window = setting(config, "LOGIN_LOCK_SECONDS")
        self.client = redis.Redis.from_url(
            setting(config, "REDIS_URL"), socket_timeout=1, socket_connect_timeout=1, decode_responses=True
        )

    def get_dependency(self, worker_ctx):
        return self

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


class Revocations(DependencyProvider):
    """The Redis mirror of revoked tokens, which this service writes (see shared.revocation)."""

    def setup(self):
        client = redis.Redis.from_url(
            setting(self.container.config, "REDIS_URL"), socket_timeout=1, socket_connect_timeout=1, decode_responses=True
        )
        self.cache = RevocationCache(client)

    def get_dependency(self, worker_ctx):
        return self.cache


class SuiteHealth(DependencyProvider):
    """The last aggregate health of the suite. A timer refreshes it every second, so that the
    gateway's /healthz (probed often by orchestrators and monitors) answers from memory instead of
    asking every service over RPC on each probe; a report older than MAX_AGE_SECONDS (the timer
    stopped answering) is not used."""

    MAX_AGE_SECONDS = 3

    def setup(self):
        self._report = None
        self._at = float("-inf")

    def get_dependency(self, worker_ctx):
        return self

    def latest(self):
        return self._report if time.monotonic() - self._at <= self.MAX_AGE_SECONDS else None

    def store(self, report):
        self._report, self._at = report, time.monotonic()
        return report
