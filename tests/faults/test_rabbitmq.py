"""The broker restarted during a stream of uploads, and away for 30 s while uploads arrive.

Uploads do not need the broker to be accepted: the image row and its event are committed together
(the outbox) and the relay publishes the event once the broker is back."""
import time

import eventlet
import pytest

from tests.faults.conftest import MAX_PROCESSING_ATTEMPTS, wait_for

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 30
RESTARTS = 4
# Several seconds at full size, longer than three broker restarts.
LONG_JOB = [{"type": "blur", "radius": 50}] * 6 + [{"type": "resize", "width": 800}]


def test_a_broker_restart_during_a_stream_of_uploads_loses_nothing(faults):
    """Restarts (a few, as a broker being upgraded or flapping) while uploads stream in and other
    requests keep every service's RPC entrypoints busy: no service dies, nothing is refused or lost."""
    account = faults.account("Restart")
    with faults.traffic(clients=16):
        stream = eventlet.spawn(lambda: faults.upload_stream(account, 24, 0.25, "restart", fail_every=5)())
        for restart in range(RESTARTS):
            eventlet.sleep(0.7)
            faults.rabbit.restart()
            eventlet.sleep(0.5)
            faults.assert_alive(f"RabbitMQ restart #{restart + 1}")
        uploads = stream.wait()

    refused = [u for u in uploads if not u.accepted]
    assert not refused, f"uploads refused because the broker restarted: {refused}"
    faults.verify([account], uploads, timeout=90)


def test_a_30_second_broker_outage_while_uploads_arrive_loses_nothing(faults):
    account = faults.account("Outage")
    faults.rabbit.stop_app()
    stopped = time.monotonic()
    # Someone signs up meanwhile: the welcome email waits in user_service's outbox.
    newcomer = faults.account("Newcomer")
    stream = eventlet.spawn(lambda: faults.upload_stream(account, 8, 2.5, "outage", fail_every=4)())
    late = eventlet.spawn(lambda: faults.upload_stream(newcomer, 3, 3, "newcomer")())
    eventlet.sleep(max(0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    faults.rabbit.start_app()
    uploads = [*stream.wait(), *late.wait()]

    refused = [u for u in uploads if not u.accepted]
    assert not refused, f"uploads refused while the broker was away: {refused}"
    faults.verify([account, newcomer], uploads, timeout=120)


def test_a_job_running_through_broker_restarts_is_not_failed_as_crashed(faults):
    """Each broker restart drops process_service's connection: the message of the job it is
    running is delivered again, though no worker crashed and the first run goes on. The first run
    keeps renewing its lease, so the redelivered message waits instead of counting a crash, and a
    flapping broker does not turn a healthy job into `processing_crashed`."""
    account = faults.account("Flapping")
    slow = faults.upload(account, faults.slow_image(), LONG_JOB, "flapping.webp")
    assert slow.accepted, slow
    faults.wait_processing(slow.image_id, attempt=1)
    for _ in range(MAX_PROCESSING_ATTEMPTS + 1):
        faults.rabbit.restart()
        faults.assert_alive("a RabbitMQ restart during a job")
        if faults.image_row(slow.image_id)["status"] != "processing":
            break
    rows = faults.verify([account], [slow], timeout=90)
    row = rows[slow.image_id]
    assert (row["processing_attempts"], row["processing_crashes"]) == (1, 0), "one run, no crash"
