"""PostgreSQL restarted under traffic, while a result comes in, and while images wait to be claimed.

Every service keeps running through a restart. process_service claims each image from
upload_service (RPC start_processing, a row lock) and upload_service records each result: both need
the database; with it away they must be retried, not dropped. Uploads meanwhile are refused with a
JSON 503 and leave nothing behind; status long-polls go on from Redis."""
import eventlet
import pytest

from tests.support.processes import wait_for

pytestmark = pytest.mark.faults

DOWN_SECONDS = 4
RESTARTS_UNDER_TRAFFIC = 5
SLOW = [{"type": "blur", "radius": 50}, {"type": "blur", "radius": 50}, {"type": "resize", "width": 640}]


def test_a_database_restart_delays_work_but_loses_nothing(faults):
    account = faults.users.account("Postgres")
    process = faults.services["process_service"]
    outputs = faults.storage_dir / "outputs"
    first = faults.users.upload(account, faults.users.small_image(1), [{"type": "resize", "width": 100}], "first.jpg")
    assert first.accepted, first
    faults.records.wait_until_final(first.image_id)

    # 0. Restarts while requests come in (status reads, health checks): every service survives.
    for restart in range(RESTARTS_UNDER_TRAFFIC):
        with faults.traffic(account, first.image_id, clients=16):
            eventlet.sleep(0.5)
            faults.postgres.stop()
            eventlet.sleep(1)
            faults.postgres.start()
        eventlet.sleep(0.5)
        faults.assert_alive(f"PostgreSQL restart #{restart + 1} under traffic")

    # 1. A job that finishes while the database is away: its result must wait, not be lost.
    slow = faults.users.upload(account, faults.users.slow_image(), SLOW, "slow.webp")
    assert slow.accepted, slow
    faults.records.wait_processing(slow.image_id, attempt=1, timeout=60)
    faults.postgres.stop()
    during = faults.users.upload_stream(account, 3, 0.3, "during")()
    status = account.images.status(slow.image_id, wait=0)
    wait_for(lambda: any(outputs.glob(f"{slow.image_id}.*")), 60, "the slow job did not finish")
    eventlet.sleep(1)  # its result reaches upload_service now, and cannot be recorded yet
    faults.postgres.start()
    faults.assert_alive("a PostgreSQL restart while a result came in")

    # While it was away: uploads refused with a JSON 503 to retry, nothing stored; the status of
    # an image came from Redis, which has it.
    for upload in during:
        assert not upload.accepted and upload.json_problem is None, upload
        assert (upload.status_code, upload.error_code) == (503, "service_unavailable"), upload
    assert status.status_code == 200, status.text
    assert status.json()["status"] == "processing"

    # 2. A backlog that process_service takes up while the database is away: every claim fails.
    process.stop()
    backlog = faults.users.upload_stream(account, 5, 0.05, "backlog", fail_every=5)()
    assert all(u.accepted for u in backlog), backlog
    faults.postgres.stop()
    process.start()
    eventlet.sleep(DOWN_SECONDS)
    faults.postgres.start()
    faults.assert_alive("a PostgreSQL restart while images waited to be claimed")
    after = faults.users.upload_stream(account, 3, 0.1, "after")()
    assert all(u.accepted for u in after), after

    faults.verify([account], [first, slow, *during, *backlog, *after], timeout=90, ambiguous_ok=False)
