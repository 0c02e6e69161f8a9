"""process_service/lease.py's HeldClaim on its own: renewals, the release and the result keep
trying while upload_service (the broker) cannot be reached, and give up what is not transient."""
import time

import eventlet
import pytest

from process_service import lease
from process_service.lease import HeldClaim
from shared import errors


class FlakyUploadService:
    """Stands in for the RPC proxy: the first `failures` calls of each method fail as a broker away would."""

    def __init__(self, failures=0):
        self.failures = {"renew": failures, "release": failures}
        self.calls = {"renew": [], "release": []}

    def _call(self, name, result):
        self.calls[name].append(time.monotonic())
        if self.failures[name] > 0:
            self.failures[name] -= 1
            raise errors.ServiceUnavailable("upload_service did not answer in time")
        return result

    def renew_processing(self, image_id, token):
        return self._call("renew", True)

    def release_processing(self, image_id, token):
        return self._call("release", True)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(lease, "RETRY_SECONDS", 0.05)


def test_a_renewal_that_fails_is_tried_again_soon_not_a_renewal_period_later():
    upload_service = FlakyUploadService(failures=2)
    with HeldClaim(upload_service, "image", "token", lease_seconds=1.5):  # renews every 0.5 s
        eventlet.sleep(0.5 + 0.05 * 2 + 0.2)
    first, second, third = upload_service.calls["renew"][:3]
    assert second - first < 0.3 and third - second < 0.3, "retried after RETRY_SECONDS"
    assert len(upload_service.calls["renew"]) == 3, "then back to one renewal per period"


def test_a_result_that_cannot_be_sent_is_sent_once_the_broker_is_back():
    sent, attempts = [], []

    def dispatch(event_type, payload):
        attempts.append(event_type)
        if len(attempts) < 4:
            raise errors.ServiceUnavailable("event broker did not accept the event in time")
        sent.append((event_type, payload))

    with HeldClaim(FlakyUploadService(), "image", "token", lease_seconds=60) as held:
        held.report(dispatch, "image_processed", {"image_id": "image"})
    assert sent == [("image_processed", {"image_id": "image"})]
    assert len(attempts) == 4


def test_a_result_that_fails_for_another_reason_is_not_retried():
    def dispatch(event_type, payload):
        raise ValueError("not serialisable")

    upload_service = FlakyUploadService()
    with pytest.raises(ValueError):
        with HeldClaim(upload_service, "image", "token", lease_seconds=60) as held:
            held.report(dispatch, "image_processed", {})
    assert len(upload_service.calls["release"]) == 1, "the claim is given back"


def test_a_release_that_cannot_get_through_is_retried_in_the_background():
    upload_service = FlakyUploadService(failures=3)
    started = time.monotonic()
    with pytest.raises(RuntimeError):
        with HeldClaim(upload_service, "image", "token", lease_seconds=60):
            raise RuntimeError("the job failed without a result")
    assert time.monotonic() - started < 0.5, "the worker does not wait for the broker"
    eventlet.sleep(0.5)
    assert len(upload_service.calls["release"]) == 4, "three failures, then released"
