"""The store as a nameko dependency: one per service process, shared by its workers.

It also keeps the process's spool clean: at start, what processes of this host that are gone left
behind (a kill -9 in the middle of an upload or a pipeline), and then every CLEAN_INTERVAL_SECONDS,
so that a host whose services never restart does not fill up with a dead neighbour's files.
"""
import logging

import eventlet
from nameko.extensions import DependencyProvider

from shared.storage import open_store

log = logging.getLogger(__name__)

CLEAN_INTERVAL_SECONDS = 600
# Older than any request or pipeline run (PROCESSING_TIMEOUT_SECONDS is 600 s by default).
SPOOL_MAX_AGE_SECONDS = 3600


class ImageStore(DependencyProvider):
    def setup(self):
        self.store = open_store(self.container.config)

    def start(self):
        self._cleaner = self.container.spawn_managed_thread(self._clean_spool_forever, identifier="spool_cleaner")

    def stop(self):
        self._cleaner.kill()

    def kill(self):
        self._cleaner.kill()

    def get_dependency(self, worker_ctx):
        return self.store

    def _clean_spool_forever(self):
        while True:
            try:
                removed = self.store.spool.clean_leftovers(SPOOL_MAX_AGE_SECONDS)
                if removed:
                    log.warning("removed %d spool folder(s) of processes that are gone", len(removed),
                                extra={"folders": [folder.name for folder in removed][:20]})
            except OSError as exc:
                log.warning("spool cleaning failed: %s", exc)
            eventlet.sleep(CLEAN_INTERVAL_SECONDS)
