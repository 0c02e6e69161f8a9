"""Holding an image's processing claim while the pipeline runs (the other half of
upload_service/claims.py): the lease is renewed every third of its length, so that only a worker
that died lets it run out; on a failure without a result the claim is given back, so that the
retry is not taken for a crash.

Renewals, the release and the result all go through the broker, so they fail while it is away.
None waits a whole renewal period to try again then: when the broker comes back it redelivers the
job's message at once, and the holder has only its last chance (two renewal periods) to be heard.
The result of a job finished during an outage is kept and sent once the broker is back (`report`),
rather than given up and the job done again."""
import contextvars
import logging
import time

import eventlet

from shared.transient import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

# After a renewal or release that did not get through: the broker may be back any moment.
RETRY_SECONDS = 1
# How long a release or a result that does not get through is tried again (a broker outage longer
# than this ends with the lease running out, counted as a crash, and the job done again).
PATIENCE_SECONDS = 300


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

    def report(self, dispatch, event_type, payload):
        """Sends the job's result while the claim is still held. A broker that is away is waited
        for (renewals go on meanwhile), so that the job is not done again when it is back."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        failed = False
        while True:
            try:
                dispatch(event_type, payload)
                if failed:
                    log.info("%s sent", event_type)
                return
            except TRANSIENT_ERRORS as exc:
                if time.monotonic() > deadline:
                    raise
                if not failed:
                    log.warning("%s not sent, trying every %s s: %s", event_type, RETRY_SECONDS, exc)
                failed = True
                eventlet.sleep(RETRY_SECONDS)

    def _keep_renewing(self):
        wait, failing = self.interval, False
        while True:
            eventlet.sleep(wait)
            try:
                if not self.upload_service.renew_processing(self.image_id, self.token):
                    # The lease ran out (upload_service was unreachable for a whole lease and the
                    # last chance) and another worker took over. Finishing is still harmless: the
                    # first result wins.
                    log.warning("processing claim lost to another worker")
                    return
                if failing:
                    log.info("processing claim renewed again")
                wait, failing = self.interval, False
            except Exception as exc:  # noqa: BLE001 - the next renewal may get through
                if not failing:
                    log.warning("processing claim not renewed, trying every %s s: %s", RETRY_SECONDS, exc)
                wait, failing = min(self.interval, RETRY_SECONDS), True

    def _release(self):
        if self._try_release():
            return
        # Unreachable (the broker is away): given back as soon as it is back, in the background,
        # so that the worker's message is dealt with meanwhile.
        log.warning("processing claim not released: trying again in the background")
        eventlet.spawn(contextvars.copy_context().run, self._release_when_reachable)

    def _try_release(self):
        try:
            self.upload_service.release_processing(self.image_id, self.token)
            return True
        except Exception as exc:  # noqa: BLE001 - tried again, or the lease runs out (a crash)
            log.debug("processing claim not released: %s", exc)
            return False

    def _release_when_reachable(self):
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            eventlet.sleep(RETRY_SECONDS)
            if self._try_release():
                log.info("processing claim released")
                return
        log.warning("processing claim not released: its lease runs out and counts as a crash")
