"""The broker restarted during a stream of uploads, away for 30 s while uploads arrive, and in a
resource alarm (taking no messages) for a while.

Uploads do not need the broker to be accepted: the image row and its event are committed together
(the outbox) and the relay publishes the event once the broker is back."""
import time

import eventlet
import pytest

from tests.faults.suite import MAX_PROCESSING_ATTEMPTS, PROCESSING_LEASE_SECONDS, PUBLISH_TIMEOUT_SECONDS
from tests.faults.users import SLOW_OPERATIONS, SMALL_OPERATIONS

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 30
RESTARTS = 4
# Several seconds at full size, longer than three broker restarts.
LONG_JOB = [{"type": "blur", "radius": 50}] * 6 + [{"type": "resize", "width": 800}]


def test_a_broker_restart_during_a_stream_of_uploads_loses_nothing(faults):
    """Restarts (a few, as a broker being upgraded or flapping) while uploads stream in and other
    requests keep every service's RPC entrypoints busy: no service dies, nothing is refused or lost."""
    account = faults.users.account("Restart")
    with faults.traffic(clients=16):
        stream = eventlet.spawn(lambda: faults.users.upload_stream(account, 24, 0.25, "restart", fail_every=5)())
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
    account = faults.users.account("Outage")
    faults.rabbit.stop_app()
    stopped = time.monotonic()
    # Someone signs up meanwhile: the welcome email waits in user_service's outbox.
    newcomer = faults.users.account("Newcomer")
    stream = eventlet.spawn(lambda: faults.users.upload_stream(account, 8, 2.5, "outage", fail_every=4)())
    late = eventlet.spawn(lambda: faults.users.upload_stream(newcomer, 3, 3, "newcomer")())
    eventlet.sleep(max(0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    faults.rabbit.start_app()
    uploads = [*stream.wait(), *late.wait()]

    refused = [u for u in uploads if not u.accepted]
    assert not refused, f"uploads refused while the broker was away: {refused}"
    faults.verify([account, newcomer], uploads, timeout=120)


def test_a_broker_resource_alarm_holds_no_request_up_and_loses_nothing(faults):
    """While RabbitMQ is in a memory or disk alarm it reads nothing from publishers. Signups and
    uploads are answered anyway, the first within the publish timeout and the rest at once (their
    events wait in the outbox), no service hangs, and once the alarm ends every image is processed
    and every email sent, once."""
    account = faults.users.account("Alarm")
    with faults.rabbit.memory_alarm():
        newcomer = faults.users.account("AlarmNewcomer")  # its welcome event waits in user_service's outbox
        first = faults.users.upload(account, faults.users.small_image(99), SMALL_OPERATIONS[0], "alarm-first.jpg")
        assert first.seconds < PUBLISH_TIMEOUT_SECONDS + 2, f"the first upload waited {first.seconds:.1f} s"
        # That publish is still stuck behind the broker: the next requests do not try their own.
        uploads = [first, *faults.users.upload_stream(account, 8, 0.25, "alarm", fail_every=4)()]
        waited = [round(upload.seconds, 2) for upload in uploads[1:] if upload.seconds >= PUBLISH_TIMEOUT_SECONDS - 0.5]
        assert not waited, f"uploads that waited for the broker (s): {waited}"
        eventlet.sleep(PUBLISH_TIMEOUT_SECONDS)  # the outbox timers meet the alarm as well
        faults.assert_alive("a broker resource alarm")
        statuses = {faults.records.image_row(u.image_id)["status"] for u in uploads if u.accepted}
        assert statuses == {"queued"}, f"processed while no event could be published? {statuses}"

    refused = [u for u in uploads if not u.accepted]
    assert not refused, f"uploads refused during the alarm: {refused}"
    faults.verify([account, newcomer], uploads, timeout=120)


def test_a_job_running_through_broker_restarts_is_not_failed_as_crashed(faults):
    """Each broker restart drops process_service's connection: the message of the job it is
    running is delivered again, though no worker crashed and the first run goes on. The first run
    keeps renewing its lease, so the redelivered message waits instead of counting a crash, and a
    flapping broker does not turn a healthy job into `processing_crashed`."""
    account = faults.users.account("Flapping")
    slow = faults.users.upload(account, faults.users.slow_image(), LONG_JOB, "flapping.webp")
    assert slow.accepted, slow
    faults.records.wait_processing(slow.image_id, attempt=1)
    for _ in range(MAX_PROCESSING_ATTEMPTS + 1):
        faults.rabbit.restart()
        faults.assert_alive("a RabbitMQ restart during a job")
        if faults.records.image_row(slow.image_id)["status"] != "processing":
            break
    rows = faults.verify([account], [slow], timeout=90)
    row = rows[slow.image_id]
    assert (row["processing_attempts"], row["processing_crashes"]) == (1, 0), "one run, no crash"


def test_a_broker_outage_longer_than_a_lease_in_the_middle_of_a_job_is_not_a_crash(faults):
    """The broker goes away while a job runs and stays away longer than a lease: the worker cannot
    renew it (renewals are RPCs) nor report its result. Once the broker is back, the job's message
    comes again and finds the lease run out; its worker is alive, so that is not a crash: one run
    is counted, none crashed, and the image completes once."""
    account = faults.users.account("LongOutage")
    slow = faults.users.upload(account, faults.users.slow_image(), SLOW_OPERATIONS, "outlasted.webp")
    assert slow.accepted, slow
    faults.records.wait_processing(slow.image_id, attempt=1)
    faults.rabbit.stop_app()
    eventlet.sleep(PROCESSING_LEASE_SECONDS * 1.5)
    faults.rabbit.start_app()
    faults.assert_alive("a broker outage longer than a processing lease")
    rows = faults.verify([account], [slow], timeout=120)
    row = rows[slow.image_id]
    assert (row["processing_attempts"], row["processing_crashes"]) == (1, 0), "one run, no crash"


OUTAGES_IN_A_ROW = (10, 30, 90)  # seconds, the broker back for a few seconds between them
UPLOADS_PER_OUTAGE = 5
LONG_POLL_SECONDS = 5


def test_three_broker_outages_in_a_row_with_uploads_and_long_polls_lose_nothing(faults):
    """Outages of 10, 30 and 90 s one after another, uploads arriving during each and while the
    broker is back, long-polls on the status throughout: every upload is accepted at once (its
    event waits in the outbox), every long-poll is answered, no service dies or restarts, and every
    image completes exactly once, with one email each."""
    account = faults.users.account("Outages")
    uploads, polls, stop = [], [], []

    def long_poller():
        while not stop:
            accepted = [upload for upload in uploads if upload.accepted]
            if not accepted:
                eventlet.sleep(0.2)
                continue
            started = time.monotonic()
            try:
                response = account.images.status(accepted[-1].image_id, wait=LONG_POLL_SECONDS)
                polls.append((response.status_code, response.headers.get("Content-Type", ""),
                              time.monotonic() - started))
            except Exception as exc:  # noqa: BLE001 - recorded, asserted below
                polls.append((None, f"{type(exc).__name__}: {exc}", time.monotonic() - started))

    pollers = [eventlet.spawn(long_poller) for _ in range(3)]
    try:
        for number, seconds in enumerate(OUTAGES_IN_A_ROW, 1):
            faults.rabbit.stop_app()
            stopped = time.monotonic()
            stream = faults.users.upload_stream(account, UPLOADS_PER_OUTAGE, seconds / (UPLOADS_PER_OUTAGE + 1),
                                          f"outage{number}")
            eventlet.sleep(max(0, seconds - (time.monotonic() - stopped)))
            faults.rabbit.start_app()
            uploads.extend(stream())
            faults.assert_alive(f"a {seconds} s broker outage")
            uploads.extend(faults.users.upload_stream(account, 2, 1, f"between{number}")())
    finally:
        stop.append(True)
        for poller in pollers:
            poller.wait()

    refused = [u for u in uploads if not u.accepted]
    assert not refused, f"uploads refused while the broker was away: {refused}"
    assert len(uploads) == len(OUTAGES_IN_A_ROW) * (UPLOADS_PER_OUTAGE + 2)
    failed_polls = [poll for poll in polls if poll[0] != 200 or not poll[1].startswith("application/json")]
    assert polls and not failed_polls, f"long-polls not answered 200 JSON: {failed_polls[:10]} of {len(polls)}"
    rows = faults.verify([account], uploads, timeout=120)
    assert {row["status"] for row in rows.values()} == {"completed"}
    assert {(row["processing_attempts"], row["processing_crashes"]) for row in rows.values()} == {(1, 0)}, \
        "each image processed once, none counted as crashed"
