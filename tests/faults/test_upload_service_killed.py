"""kill -9 upload_service in the middle of an upload, and while images wait for it."""
import os
import time
from types import SimpleNamespace

import eventlet
import pytest
from nameko.testing.services import worker_factory
from sqlalchemy.orm import Session

from tests.faults.users import SMALL_OPERATIONS
from tests.support.processes import wait_for
from upload_service.service import ORPHAN_MIN_AGE_SECONDS, UploadService

pytestmark = pytest.mark.faults


def run_the_sweeper(faults):
    """upload_service's own `sweep_storage` (README: every 10 min, files older than an hour), run
    now on the suite's storage and database, every file made older than the hour first."""
    long_ago = time.time() - ORPHAN_MIN_AGE_SECONDS - 600
    for folder in ("originals", "outputs"):
        for path in (faults.storage_dir / folder).iterdir():
            os.utime(path, (long_ago, long_ago))
    with Session(faults.records.engine) as session:
        service = worker_factory(UploadService, storage=faults.store.store, db=SimpleNamespace(session=session))
        service.sweep_storage()


def test_an_upload_killed_midway_leaves_nothing_the_sweeper_does_not_remove(faults):
    """kill -9 while a large upload is validated (its file written, its row not yet): the client
    gets a JSON 502, nothing is half-stored in the database, the file left on disk is what the
    documented sweeper removes (and only that), uploads around the kill complete."""
    account = faults.users.account("Interrupted")
    upload_service = faults.services["upload_service"]
    big = faults.users.slow_image()  # validated for ~0.5 s between its file being written and its row
    originals = faults.storage_dir / "originals"
    earlier = {entry.name for entry in os.scandir(originals)}  # other tests' copies of the same image

    stream = eventlet.spawn(lambda: faults.users.upload_stream(account, 12, 0.15, "stream")())
    eventlet.sleep(0.3)
    interrupted = eventlet.spawn(faults.users.upload, account, big, [{"type": "resize", "width": 400}], "interrupted.webp")

    def big_file_written():
        for entry in os.scandir(originals):
            if entry.name in earlier:
                continue
            try:
                if entry.stat().st_size == len(big):
                    return entry.name
            except FileNotFoundError:
                continue
        eventlet.sleep(0.001)
        return None

    written = wait_for(big_file_written, 20, "the big upload never reached the disk", interval=0)
    upload_service.kill()
    half_stored = written.lstrip(".").split(".")[0]  # originals/<id>, or .<id>.<random>.part mid-copy
    assert faults.records.image_row(half_stored) is None, "killed too late: the row was already written"
    eventlet.sleep(1)
    upload_service.start()
    uploads = [interrupted.wait(), *stream.wait()]

    killed, others = uploads[0], uploads[1:]
    assert any(u.accepted for u in others), "no upload was accepted around the kill"

    def left_behind():
        return [path for path in originals.iterdir() if half_stored in path.name]

    assert left_behind(), "expected the crash to leave the half-stored original behind"

    # The documented sweeper removes what the crash left, and nothing else.
    for upload in uploads:
        if upload.accepted:
            faults.records.wait_until_final(upload.image_id)
    run_the_sweeper(faults)
    assert not left_behind(), "the sweeper left the half-stored original"

    faults.verify([account], others, timeout=60)
    assert faults.records.image_rows([account.user["id"]]) and all(
        row["original_filename"] != killed.filename for row in faults.records.image_rows([account.user["id"]]))

    after = faults.users.upload(account, faults.users.small_image(99), SMALL_OPERATIONS[0], "after.jpg")
    assert after.accepted, after
    faults.verify([account], [*others, after], timeout=30)

    # The client of the killed upload was told, in JSON, that the service behind the gateway failed.
    assert killed.json_problem is None, f"the interrupted upload's answer is not JSON: {killed.json_problem}"
    assert (killed.status_code, killed.error_code) == (502, "bad_gateway"), killed


def test_images_waiting_for_a_dead_upload_service_are_not_failed_as_crashed(faults):
    """process_service asks upload_service (RPC start_processing) before each job. While
    upload_service is down the call times out and the job is retried with backoff. The requests
    that timed out expire in the broker with the caller's timeout, so that upload_service, back,
    does not grant claims nobody waits for (which would run out as crashes)."""
    account = faults.users.account("Patient")
    upload_service = faults.services["upload_service"]
    process = faults.services["process_service"]
    # A short RPC timeout makes the calls that time out (and their retries) pile up within seconds
    # rather than minutes; the behaviour is the same with the default 10 s, only slower.
    process.stop()  # the uploads' events wait in its queue
    process.env = {**process.env, "RPC_TIMEOUT_SECONDS": "1"}
    try:
        uploads = faults.users.upload_stream(account, 3, 0.05, "waiting")()
        assert all(u.accepted for u in uploads), uploads
        upload_service.kill()
        process.start()
        eventlet.sleep(14)  # retries after ~1, 2, 4 s, each call timing out after 1 s
        upload_service.start()
        faults.verify([account], uploads, timeout=60)
    finally:
        process.stop()
        process.env = faults.env
        process.start()
