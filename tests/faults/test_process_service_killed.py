"""kill -9 process_service in the middle of a job, once and then on every attempt at one image."""
import pytest

from tests.faults.conftest import MAX_PROCESSING_ATTEMPTS, SLOW_OPERATIONS

pytestmark = pytest.mark.faults


def test_a_job_killed_midway_is_done_again_with_the_same_result(faults):
    account = faults.account("Killed")
    process = faults.services["process_service"]
    slow = faults.upload(account, faults.slow_image(), SLOW_OPERATIONS, "slow.webp")
    assert slow.accepted, slow
    bystanders = faults.upload_stream(account, 3, 0.05, "bystander")()

    faults.wait_processing(slow.image_id, attempt=1)
    process.kill()
    assert faults.image_row(slow.image_id)["status"] == "processing"
    process.start()

    rows = faults.verify([account], [slow, *bystanders], timeout=90)
    row = rows[slow.image_id]
    assert (row["processing_attempts"], row["processing_crashes"]) == (2, 1)


def test_an_image_that_kills_its_worker_every_time_fails_and_the_others_go_on(faults):
    account = faults.account("Crasher")
    process = faults.services["process_service"]
    slow = faults.upload(account, faults.slow_image(), SLOW_OPERATIONS, "crasher.webp")
    assert slow.accepted, slow
    before = faults.upload_stream(account, 2, 0.05, "before")()

    for attempt in range(1, MAX_PROCESSING_ATTEMPTS + 1):
        faults.wait_processing(slow.image_id, attempt=attempt)
        process.kill()
        process.start()
    after = faults.upload_stream(account, 2, 0.05, "after")()

    rows = faults.verify(
        [account], [slow, *before, *after], timeout=90,
        expect={"crasher.webp": {"status": "failed", "error_code": "processing_crashed"}},
    )
    row = rows[slow.image_id]
    assert (row["processing_attempts"], row["processing_crashes"]) == (MAX_PROCESSING_ATTEMPTS, MAX_PROCESSING_ATTEMPTS)
