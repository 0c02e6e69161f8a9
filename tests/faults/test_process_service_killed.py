"""process_service stopped in the middle of a job: kill -9 once, on every attempt at one image, and SIGTERM."""
import eventlet
import pytest

from tests.faults.suite import MAX_PROCESSING_ATTEMPTS, PROCESSING_LEASE_SECONDS
from tests.faults.users import SLOW_OPERATIONS

pytestmark = pytest.mark.faults


def test_a_job_killed_midway_is_done_again_with_the_same_result(faults):
    account = faults.users.account("Killed")
    process = faults.services["process_service"]
    slow = faults.users.upload(account, faults.users.slow_image(), SLOW_OPERATIONS, "slow.webp")
    assert slow.accepted, slow
    bystanders = faults.users.upload_stream(account, 3, 0.05, "bystander")()

    faults.records.wait_processing(slow.image_id, attempt=1)
    process.kill()
    assert faults.records.image_row(slow.image_id)["status"] == "processing"
    process.start()

    rows = faults.verify([account], [slow, *bystanders], timeout=90)
    row = rows[slow.image_id]
    assert (row["processing_attempts"], row["processing_crashes"]) == (2, 1)


def test_an_image_that_kills_its_worker_every_time_fails_and_the_others_go_on(faults):
    """The neighbour that was in hand with it at the first crash runs alone afterwards
    (process_service/isolation.py) and completes, with that one crash on its record."""
    account = faults.users.account("Crasher")
    process = faults.services["process_service"]
    crasher = faults.users.upload(account, faults.users.slow_image(), SLOW_OPERATIONS, "crasher.webp")
    neighbour = faults.users.upload(account, faults.users.slow_image(), SLOW_OPERATIONS, "neighbour.webp")
    assert crasher.accepted and neighbour.accepted, (crasher, neighbour)
    before = faults.users.upload_stream(account, 2, 0.05, "before")()

    faults.records.wait_processing(neighbour.image_id, attempt=1)  # both in hand when the process first dies
    for attempt in range(1, MAX_PROCESSING_ATTEMPTS + 1):
        faults.records.wait_processing(crasher.image_id, attempt=attempt)
        process.kill()
        # Down until the dead worker's leases run out: the next process then gets back every
        # message in hand at once, each with a crash to count (the worst case for a neighbour).
        eventlet.sleep(PROCESSING_LEASE_SECONDS + 1)
        process.start()
    after = faults.users.upload_stream(account, 2, 0.05, "after")()

    rows = faults.verify(
        [account], [crasher, neighbour, *before, *after], timeout=120,
        expect={"crasher.webp": {"status": "failed", "error_code": "processing_crashed"}},
    )
    row = rows[crasher.image_id]
    assert (row["processing_attempts"], row["processing_crashes"]) == (MAX_PROCESSING_ATTEMPTS, MAX_PROCESSING_ATTEMPTS)
    assert rows[neighbour.image_id]["processing_crashes"] == 1


def test_sigterm_lets_the_running_job_finish_and_leaves_the_waiting_ones_queued(faults):
    """A graceful stop (SIGTERM: `docker stop`, a deploy) is not a crash: the job in hand is
    finished and reported, messages not yet started stay in the queue for the next process."""
    account = faults.users.account("Stopped")
    process = faults.services["process_service"]
    slow = faults.users.upload(account, faults.users.slow_image(), SLOW_OPERATIONS, "stopped.webp")
    assert slow.accepted, slow
    faults.records.wait_processing(slow.image_id, attempt=1)

    process.stop()  # SIGTERM, then waits for the process to exit
    assert process.process.returncode is not None and process.process.returncode != -9
    row = faults.records.wait_until_final(slow.image_id, timeout=30)  # reported before it exited
    assert row["status"] == "completed", row

    waiting = faults.users.upload_stream(account, 2, 0.05, "waiting")()
    assert all(upload.accepted for upload in waiting), waiting
    eventlet.sleep(2)
    assert {faults.records.image_row(u.image_id)["status"] for u in waiting} == {"queued"}, "nobody to take them yet"
    process.start()

    rows = faults.verify([account], [slow, *waiting], timeout=60)
    assert (rows[slow.image_id]["processing_attempts"], rows[slow.image_id]["processing_crashes"]) == (1, 0)
