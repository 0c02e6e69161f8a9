"""Password hashing with bcrypt, off the event loop.

bcrypt reads at most 72 bytes (bcrypt 5 raises beyond that), so the password is first reduced to a
fixed-size digest as OWASP's Password Storage Cheat Sheet describes: base64(SHA-384(password)) is 64
ASCII bytes, keeps every character significant, and has no NUL bytes for bcrypt to stop at.
"""
import base64
import hashlib
import os

import bcrypt
from eventlet.semaphore import Semaphore

from shared.threads import run_in_thread
from shared.tracing import tracer


def _prehash(password):
    return base64.b64encode(hashlib.sha384(password.encode("utf-8")).digest())


def _hash(password, rounds):
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def _verify(password, password_hash):
    return bcrypt.checkpw(_prehash(password), password_hash.encode("ascii"))


# bcrypt is CPU-bound by design: more hashes at once than cores only makes each one slower, and
# would take every native thread. Others wait here, in the event loop, without blocking it.
_hashing_slots = Semaphore(max(1, os.cpu_count() or 1))


def hashing_slot():
    """One of as many slots as cores. A login holds one for its lookup as well as its hash (see
    UserService.login), then calls `verify_in_slot`."""
    return _hashing_slots


def hash_password(password, rounds):
    with tracer().start_as_current_span("bcrypt.hash"), _hashing_slots:
        return run_in_thread(_hash, password, rounds)


def verify_password(password, password_hash):
    with _hashing_slots:
        return verify_in_slot(password, password_hash)


def verify_in_slot(password, password_hash):
    """`verify_password` for a caller that holds a `hashing_slot()` already."""
    with tracer().start_as_current_span("bcrypt.verify"):
        return run_in_thread(_verify, password, password_hash)


class DummyHash:
    """A hash to verify against when the email is unknown, so that the answer takes as long."""

    def __init__(self, rounds):
        self.rounds = rounds
        self._value = None

    @property
    def value(self):
        if self._value is None:
            self._value = _hash("not a real password", self.rounds)
        return self._value
