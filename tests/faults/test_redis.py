"""Redis stopped (it comes back empty) and flushed while the suite works.

Redis is a cache and a doorbell (README, Guarantees): statuses live in PostgreSQL, long-polls fall
back to polling the database, login works, and the mirror of revocations is reloaded."""
import time

import eventlet
import pytest
import requests

from tests.faults.users import SMALL_OPERATIONS

pytestmark = pytest.mark.faults

LONG_POLL = 20


def long_poll(account, upload):
    """The status with ?wait=, and how long it took."""
    started = time.monotonic()
    response = account.images.status(upload.image_id, wait=LONG_POLL)
    return response, time.monotonic() - started


def upload_and_wait(faults, account, label, count):
    uploads = faults.users.upload_stream(account, count, 0.05, label)()
    assert all(u.accepted for u in uploads), uploads
    polls = [eventlet.spawn(long_poll, account, upload) for upload in uploads]
    for upload, poll in zip(uploads, polls):
        response, seconds = poll.wait()
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed", response.text
        # Processing takes well under a second: a long-poll that sleeps out its wait missed the change.
        assert seconds < LONG_POLL / 2, f"{label}: the long-poll took {seconds:.1f} s for a finished image"
    return uploads


def test_redis_stopped_and_flushed_degrades_to_the_database_and_loses_nothing(faults):
    account = faults.users.account("Cache")
    uploads = upload_and_wait(faults, account, "before", 2)

    faults.redis.stop()
    login = requests.post(f"{faults.url}/api/users/login", json={"email": account.email, "password": account.password},
                          timeout=30)
    assert login.status_code == 200, login.text
    uploads += upload_and_wait(faults, account, "stopped", 3)
    for upload in uploads:
        response = account.images.status(upload.image_id, wait=0)
        assert response.status_code == 200 and response.json()["status"] == "completed", response.text

    faults.redis.start()  # empty: nothing was saved
    eventlet.sleep(2)  # the status subscription reconnects within a second
    uploads += upload_and_wait(faults, account, "restarted", 2)

    faults.redis.flush()
    uploads += upload_and_wait(faults, account, "flushed", 2)
    late = faults.users.account("Late")  # signup and login right after the flush
    uploads.append(faults.users.upload(late, faults.users.small_image(5), SMALL_OPERATIONS[1], "late.jpg"))
    assert uploads[-1].accepted, uploads[-1]

    faults.verify([account, late], uploads, timeout=60)
