"""A pixel budget: bounds how many pixels are being decoded at once in one process.

A count of concurrent jobs does not bound memory (one 50-megapixel image weighs as much as a
thousand thumbnails); the pixels being decoded do. A request larger than the whole budget still
runs, alone.
"""
from contextlib import contextmanager

from eventlet.event import Event


class PixelBudget:
    def __init__(self, pixels):
        self.capacity = pixels
        self.in_use = 0
        self._waiters = []

    def _fits(self, pixels):
        return self.in_use == 0 or self.in_use + min(pixels, self.capacity) <= self.capacity

    def acquire(self, pixels):
        while not self._fits(pixels):
            waiter = Event()
            self._waiters.append(waiter)
            waiter.wait()
        self.in_use += pixels
        return pixels

    def release(self, pixels):
        self.in_use -= pixels
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.send()

    @contextmanager
    def reserve(self, pixels):
        self.acquire(pixels)
        try:
            yield
        finally:
            self.release(pixels)
