"""ProcessService asking for an image's claim (worker_factory: its dependencies are mocks): a
lease found run out gives its holder a last chance; on a message's last attempt, with no retry left
to come back after it, the worker waits for that chance itself instead of dropping the message."""
import pytest
from nameko.testing.services import worker_factory

from process_service import service as process_module
from process_service.service import ProcessService
from shared.delivery import RetryAfter

OVERDUE = {"proceed": False, "reason": "in_progress", "retry_after": 10, "overdue": True}
PAYLOAD = {"image_id": "6f1c1f64-7d2a-4d0b-9a53-5d2f0c1e2b3a", "operations": []}


@pytest.fixture
def sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(process_module.eventlet, "sleep", slept.append)
    return slept


def worker(last_attempt, *claims):
    service = worker_factory(ProcessService)
    service.delivery.last_attempt = last_attempt
    service.upload_service.start_processing.side_effect = list(claims)
    return service


def test_an_overdue_lease_is_waited_for_by_a_delayed_retry(sleeps):
    service = worker(False, OVERDUE)
    with pytest.raises(RetryAfter) as raised:
        service._claim_and_process(PAYLOAD, alone=False)
    assert raised.value.seconds == 10
    assert service.upload_service.start_processing.call_count == 1 and sleeps == []


def test_on_the_last_attempt_the_worker_waits_for_the_last_chance_itself_and_asks_again(sleeps):
    service = worker(True, OVERDUE, {"proceed": False, "reason": "completed"})
    service._claim_and_process(PAYLOAD, alone=False)
    assert sleeps == [10]
    assert service.upload_service.start_processing.call_count == 2


def test_on_the_last_attempt_a_holder_that_renewed_is_left_to_report(sleeps):
    renewed = {"proceed": False, "reason": "in_progress", "retry_after": 15}
    service = worker(True, OVERDUE, renewed)
    service._claim_and_process(PAYLOAD, alone=False)  # acknowledged: its holder is alive and reports
    assert service.upload_service.start_processing.call_count == 2
    service.dispatch.assert_not_called()
