"""The service container every process of the suite runs (`SERVICE_CONTAINER_CLS` in config.yaml).

It is where the suite's patches to nameko are applied (shared/broker_faults.py), once, when the
first container is made: before any extension starts.

nameko kills a container when one of its threads dies with an error, and `nameko run` exits once
that kill is over. But the kill waits for the message consumer to finish, and a consumer that is
reconnecting to a broker that is away waits for the broker: the process lived on, its HTTP port
open, answering every request with an error until the outage ended. A process whose container is
dying must go, promptly and with a non-zero status, so that whatever supervises it (scripts/respawn
locally, Compose or Kubernetes elsewhere) starts a healthy one.

So a container killed by an error
- stops accepting HTTP connections at once (requests already in flight get a JSON 503, see
  shared/http.py), and
- ends its process with EXIT_STATUS if its kill has not let `nameko run` exit within
  KILL_DEADLINE_SECONDS. The watchdog is a native thread: it fires even if the event loop is stuck.

A kill without an error (a test's teardown, `ServiceRunner.kill()`) is nameko's own.

`stop()` may be asked twice (SIGTERM reaches a service from its supervisor and from the signal to
its process group): the second call waits for the first instead of stopping extensions again.
"""
import logging
import os

from eventlet import patcher
from nameko.containers import ServiceContainer as NamekoServiceContainer
from nameko.web.server import WebServer

from shared import broker_faults

log = logging.getLogger(__name__)

native_threading = patcher.original("threading")

KILL_DEADLINE_SECONDS = 5
EXIT_STATUS = 70  # EX_SOFTWARE: the service failed, start it again


class ServiceContainer(NamekoServiceContainer):
    kill_deadline_seconds = KILL_DEADLINE_SECONDS
    _stopping = False

    def __init__(self, service_cls, config):
        broker_faults.install()
        super().__init__(service_cls, config)

    def stop(self):
        if self._stopping:
            try:
                self._died.wait()
            except Exception:  # noqa: BLE001 - the first stop's caller sees how it died
                pass
            return
        self._stopping = True
        super().stop()

    def kill(self, exc_info=None):
        if exc_info is not None and not self._being_killed and not self._died.ready():
            self._close_http_listeners()
            self._end_process_after(self.kill_deadline_seconds, exc_info[1])
        super().kill(exc_info)

    def end_process(self, reason):
        """What the watchdog does once the deadline has passed (tests replace it)."""
        log.critical("%s: killed by %r and still not gone after %s s: exiting with status %s",
                     self.service_name, reason, self.kill_deadline_seconds, EXIT_STATUS)
        logging.shutdown()
        os._exit(EXIT_STATUS)

    def _end_process_after(self, seconds, reason):
        timer = native_threading.Timer(seconds, self.end_process, args=(reason,))
        timer.daemon = True
        timer.start()

    def _close_http_listeners(self):
        for extension in self.extensions:
            if isinstance(extension, WebServer) and extension._sock is not None:
                try:
                    extension._sock.close()
                except OSError:
                    pass
