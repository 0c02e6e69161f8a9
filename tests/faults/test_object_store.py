"""The object store (SeaweedFS, STORAGE_URL=s3://...) stopped for 20 s while uploads come in and
images are being processed."""
import time

import eventlet
import pytest
import requests

from tests.conftest import STORE_KINDS
from tests.faults.users import SLOW_OPERATIONS, SMALL_OPERATIONS
from tests.support.processes import wait_for

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 20
# STORAGE_TIMEOUT_SECONDS (10) bounds one attempt; boto3's three attempts on a refused connection
# take a few seconds more at most. Past this, an upload "hangs".
UPLOAD_ANSWER_WITHIN_SECONDS = 15


@pytest.fixture
def fault_store():
    return "s3"


def test_a_store_outage_refuses_uploads_with_503_and_the_images_in_flight_complete_once_it_is_back(faults):
    account = faults.users.account("StoreOutage")
    in_flight = [faults.users.upload(account, faults.users.slow_image(), SLOW_OPERATIONS, f"in-flight-{n}.webp")
                 for n in range(2)]
    queued = faults.users.upload_stream(account, 3, 0.05, "queued")()
    assert all(upload.accepted for upload in in_flight + queued), in_flight + queued
    faults.records.wait_processing(in_flight[0].image_id, attempt=1)

    faults.seaweedfs.stop()
    stopped = time.monotonic()
    during, health = [], []
    while time.monotonic() - stopped < OUTAGE_SECONDS:
        during.append(faults.users.upload(account, faults.users.small_image(len(during)), SMALL_OPERATIONS[0],
                                          f"during-{len(during)}.jpg"))
        answer = requests.get(f"{faults.url}/healthz", timeout=10)
        health.append((answer.status_code, answer.text))
        eventlet.sleep(1)
    faults.seaweedfs.start()
    after = faults.users.upload_stream(account, 3, 0.05, "after")()

    # Uploads during the outage: a JSON 503 in bounded time, nothing of them stored.
    assert during, "no upload was tried during the outage"
    for upload in during:
        assert upload.json_problem is None, f"{upload}: {upload.json_problem}"
        assert (upload.status_code, upload.error_code) == (503, "service_unavailable"), upload
        assert upload.body["error"]["details"].get("dependency") == "storage", upload.body
        assert upload.seconds < UPLOAD_ANSWER_WITHIN_SECONDS, f"{upload} took {upload.seconds:.1f} s"
    # /healthz says which part is down: the store, by its URL.
    assert health and all(status == 503 for status, _ in health), health
    assert any(faults.env["STORAGE_URL"] in text for _, text in health), health[-1]

    # The images in flight and queued complete once it is back, each once, with the bytes the same
    # pipeline makes without any outage; nothing is lost or left behind.
    assert all(upload.accepted for upload in after), after
    faults.verify([account], [*in_flight, *queued, *during, *after], timeout=120, ambiguous_ok=False)
    assert faults.spool_files() == [], "local copies outlived their runs"


@pytest.mark.parametrize("fault_store", STORE_KINDS)
def test_a_worker_killed_midway_leaves_no_local_copy_and_the_image_completes(faults, fault_store):
    """kill -9 while a pipeline runs on a fetched original: the next process of the host removes
    what the dead one had in its spool, and the image is processed again to the same bytes."""
    account = faults.users.account("SpoolKilled")
    process = faults.services["process_service"]
    slow = faults.users.upload(account, faults.users.slow_image(), SLOW_OPERATIONS, "spool-killed.webp")
    assert slow.accepted, slow
    faults.records.wait_processing(slow.image_id, attempt=1)
    wait_for(faults.spool_files, 10, "the run's local files never appeared", interval=0.05)
    process.kill()
    assert faults.spool_files(), "the kill left nothing to clean: the test proves nothing"
    process.start()
    wait_for(lambda: not faults.spool_files(), 20, lambda: f"left in the spool: {faults.spool_files()}")
    faults.verify([account], [slow], timeout=90)
