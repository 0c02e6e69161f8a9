"""Holding an image's processing claim while the pipeline runs (the other half of
upload_service/claims.py): the lease is renewed every third of its length, so that only a worker
that died lets it run out; on a failure without a result the claim is given back, so that the
retry is not taken for a crash."""
import contextvars
import logging

import eventlet

log = logging.getLogger(__name__)


class HeldClaim:
    def __init__(self, upload_service, image_id, token, lease_seconds):
        self.upload_service = upload_service
        self.image_id = image_id
        self.token = token
        self.interval = max(lease_seconds / 3, 0.5)
        self._renewer = None

    def __enter__(self):
        # The renewals belong to the job's trace: run them in its context.
        self._renewer = eventlet.spawn(contextvars.copy_context().run, self._keep_renewing)
        return self

    def __exit__(self, exc_type, exc, traceback):
        self._renewer.kill()
        if exc is not None:
            self._release()
        return False

    def _keep_renewing(self):
        while True:
            eventlet.sleep(self.interval)
            try:
                if not self.upload_service.renew_processing(self.image_id, self.token):
                    # The lease ran out (upload_service was unreachable for a whole lease) and
                    # another worker took over. Finishing is still harmless: the first result wins.
                    log.warning("processing claim lost to another worker")
                    return
            except Exception as exc:  # noqa: BLE001 - the next renewal may get through
                log.warning("processing claim not renewed: %s", exc)

    def _release(self):
        try:
            self.upload_service.release_processing(self.image_id, self.token)
        except Exception as exc:  # noqa: BLE001 - then the lease runs out and counts as a crash
            log.warning("processing claim not released: %s", exc)
