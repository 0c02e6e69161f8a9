"""Suspect jobs run alone, so that an image that kills its process takes no other image with it.

When a process dies (kill -9, out of memory, a decoder crash) each image it had in hand counts a
crash (see upload_service/claims.py) and becomes a suspect. If the suspects ran side by side
again, an image that was merely next to the culprit would share its fate and, after
MAX_PROCESSING_ATTEMPTS, fail with `processing_crashed`.

So a suspect is processed alone in its process: it waits until the jobs already running end, and
no new job starts until it is done. Only the culprit can then crash again; a bystander completes.
A job learns that its image is a suspect when it claims it (`run_alone`), then leaves the shared
gate without a claim and waits here alone, so waiting never counts a crash. Alone jobs go first
(new jobs wait behind them), so a steady stream of fresh uploads cannot starve them.
"""
from contextlib import contextmanager

from eventlet.green import threading


class Suspect(Exception):
    """The image was in hand when a worker died: claim it again from `Isolation.gate(alone=True)`."""


class Isolation:
    def __init__(self):
        self._changed = threading.Condition()
        self._running = 0
        self._alone = False
        self._waiting_alone = 0

    @contextmanager
    def gate(self, alone):
        """Run the block alone (no other job of this process at the same time) or alongside others."""
        with (self._run_alone() if alone else self._run_alongside()):
            yield

    @contextmanager
    def _run_alongside(self):
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    @contextmanager
    def _run_alone(self):
        with self._changed:
            self._waiting_alone += 1
            try:
                self._changed.wait_for(lambda: not self._alone and not self._running)
            finally:
                self._waiting_alone -= 1
                self._changed.notify_all()  # also when the wait was cut short (a worker killed)
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()
