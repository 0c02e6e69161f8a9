"""Says once that a server is gone and once that it is back: a reconnecting loop retries every
second or so, and a line per try buried every other line of a long outage in the log."""
import logging
import time

log = logging.getLogger(__name__)


class Outage:
    """`failed(exc)` on every failed try (one WARNING per outage, then DEBUG), `recovered()` once
    the server answers again (one INFO, with how long it was away)."""

    def __init__(self, what, server):
        self.what = what
        self.server = server
        self.since = None

    @property
    def ongoing(self):
        return self.since is not None

    def failed(self, exc, retry_in=None, logger=log):
        described = f"{type(exc).__name__}: {exc}"
        if self.since is None:
            self.since = time.monotonic()
            logger.warning("%s lost %s (%s); reconnecting", self.what, self.server, described)
        else:
            logger.debug("%s still without %s (%s), next try in %s s", self.what, self.server, described, retry_in)

    def recovered(self, logger=log):
        if self.since is not None:
            logger.info("%s has %s back after %.1f s", self.what, self.server, time.monotonic() - self.since)
            self.since = None
