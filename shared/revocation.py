"""Revoked tokens, as every service sees them.

user_service is the record: it keeps revocations in PostgreSQL (a token's `jti` on logout; a
user's `tokens_valid_after` on a password change) and mirrors them into Redis, which every
service reads on each request. Redis is only a cache: when it is away or was emptied (the
`revocations:loaded` marker is gone), a service asks user_service over RPC instead, and
user_service reloads Redis from PostgreSQL within seconds. A Redis restart never brings a revoked
token back.
"""
import logging
import time

import redis

log = logging.getLogger(__name__)

LOADED_KEY = "revocations:loaded"


def revoked_key(jti):
    return f"revoked-token:{jti}"


def valid_after_key(user_id):
    return f"tokens-valid-after:{user_id}"


def is_revoked(claims, revoked_jti, valid_after):
    """The rule, in one place: the token itself was revoked, or it is older than the user's cut-off."""
    return bool(revoked_jti) or (valid_after is not None and float(claims["iat"]) < float(valid_after))


class RevocationCache:
    def __init__(self, client):
        self.client = client

    def check(self, claims):
        """True/False when Redis knows; None when it cannot tell (away, or not loaded yet)."""
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(LOADED_KEY)
            pipe.exists(revoked_key(claims["jti"]))
            pipe.get(valid_after_key(claims["sub"]))
            loaded, revoked, valid_after = pipe.execute()
        except redis.RedisError as exc:
            log.warning("revocation cache unavailable: %s", exc)
            return None
        if not loaded:
            return None
        return is_revoked(claims, revoked, valid_after)

    def is_loaded(self):
        return bool(self.client.exists(LOADED_KEY))

    def load(self, revoked_tokens, valid_after_by_user, ttl_seconds):
        """Mirrors the record into Redis; `revoked_tokens`: [(jti, expires_at epoch)]."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for jti, expires_at in revoked_tokens:
            pipe.set(revoked_key(jti), "1", ex=max(1, int(expires_at - now) + 1))
        for user_id, valid_after in valid_after_by_user:
            pipe.set(valid_after_key(user_id), repr(valid_after), ex=ttl_seconds)
        pipe.set(LOADED_KEY, str(now))
        pipe.execute()

    def revoke(self, jti, expires_at):
        try:
            self.client.set(revoked_key(jti), "1", ex=max(1, int(expires_at - time.time()) + 1))
        except redis.RedisError as exc:
            log.warning("revocation cache unavailable: %s", exc)

    def set_valid_after(self, user_id, valid_after, ttl_seconds):
        try:
            self.client.set(valid_after_key(user_id), repr(valid_after), ex=ttl_seconds)
        except redis.RedisError as exc:
            log.warning("revocation cache unavailable: %s", exc)
