"""The claim rules of upload_service/claims.py on a plain row: leases, crashes, renewals, releases."""
import datetime as dt
from types import SimpleNamespace

from upload_service import claims

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)
LEASE = 15


def unclaimed():
    return SimpleNamespace(processing_attempts=0, processing_crashes=0, claim_token=None, claim_expires_at=None,
                           claim_overdue_since=None)


def later(seconds):
    return NOW + dt.timedelta(seconds=seconds)


LAST_CHANCE = claims.last_chance_seconds(LEASE)  # 10 s: two renewal periods
# When a holder claimed at `moment` that never renewed is found crashed: a claim after its lease
# ran out gives it a last chance, the next one after that finds the crash.
def silent_holder_found_at(moment):
    return moment + LEASE + 1, moment + LEASE + 1 + LAST_CHANCE + 1


def test_a_first_claim_is_granted_with_a_lease():
    image = unclaimed()
    granted = claims.claim(image, NOW, LEASE, max_crashes=3)
    assert granted.proceed and granted.token == image.claim_token
    assert image.claim_expires_at == later(LEASE)
    assert (image.processing_attempts, image.processing_crashes) == (1, 0)


def test_a_claim_while_the_lease_runs_waits_for_its_end():
    image = unclaimed()
    claims.claim(image, NOW, LEASE, 3)
    waiting = claims.claim(image, later(10.2), LEASE, 3)
    assert (waiting.proceed, waiting.reason, waiting.wait_seconds) == (False, "in_progress", 5)
    assert (image.processing_attempts, image.processing_crashes) == (1, 0)


def test_a_lease_that_ran_out_gets_a_last_chance_then_is_a_crash_and_the_next_worker_takes_over():
    image = unclaimed()
    first = claims.claim(image, NOW, LEASE, 3)
    assert not first.found_crash
    overdue_at, crashed_at = silent_holder_found_at(0)
    last_chance = claims.claim(image, later(overdue_at), LEASE, 3)
    assert (last_chance.proceed, last_chance.reason, last_chance.wait_seconds) == (False, "in_progress", LAST_CHANCE)
    assert last_chance.overdue and not last_chance.found_crash
    assert image.claim_token == first.token and image.claim_overdue_since == later(overdue_at)
    waiting = claims.claim(image, later(overdue_at + 5), LEASE, 3)
    assert (waiting.reason, waiting.wait_seconds, waiting.overdue) == ("in_progress", 5, False), "given once"
    second = claims.claim(image, later(crashed_at), LEASE, 3)
    assert second.proceed and second.token != first.token and second.found_crash
    assert (image.processing_attempts, image.processing_crashes) == (2, 1)
    assert image.claim_overdue_since is None


def test_a_holder_cut_off_for_longer_than_its_lease_keeps_its_claim_by_renewing_in_its_last_chance():
    """A broker outage longer than a lease: the holder could not renew, and its message came back
    before its next renewal. It is alive, so no crash is counted."""
    image = unclaimed()
    token = claims.claim(image, NOW, LEASE, 3).token
    assert claims.claim(image, later(LEASE + 20), LEASE, 3).overdue
    assert claims.renew(image, token, later(LEASE + 25), LEASE)
    assert image.claim_overdue_since is None and image.claim_expires_at == later(LEASE + 25 + LEASE)
    after_last_chance = claims.claim(image, later(LEASE + 25 + LAST_CHANCE + 1), LEASE, 3)
    assert after_last_chance.reason == "in_progress" and not after_last_chance.found_crash
    assert (image.processing_attempts, image.processing_crashes) == (1, 0)
    # Overdue again later (another outage): a last chance again.
    assert claims.claim(image, later(LEASE + 25 + LEASE + 1), LEASE, 3).overdue


def test_an_image_in_hand_when_its_worker_died_is_claimed_only_to_run_alone():
    image = unclaimed()
    claims.claim(image, NOW, LEASE, 3, alongside_others=True)
    overdue_at, crashed_at = silent_holder_found_at(0)
    assert claims.claim(image, later(overdue_at), LEASE, 3, alongside_others=True).overdue
    refused = claims.claim(image, later(crashed_at), LEASE, 3, alongside_others=True)
    assert (refused.proceed, refused.reason, image.claim_token) == (False, "run_alone", None)
    assert refused.found_crash
    assert (image.processing_attempts, image.processing_crashes) == (1, 1), "the crash is counted once"

    alone = claims.claim(image, later(crashed_at + 1), LEASE, 3, alongside_others=False)
    assert alone.proceed and not alone.found_crash, "the crash was found (and cleared up) once"
    assert (image.processing_attempts, image.processing_crashes) == (2, 1)


def test_an_image_that_never_crashed_runs_alongside_others():
    image = unclaimed()
    assert claims.claim(image, NOW, LEASE, 3, alongside_others=True).proceed


def test_the_crash_limit_fails_the_image():
    image = unclaimed()
    moment = 0
    for _ in range(3):
        assert claims.claim(image, later(moment), LEASE, 3).proceed
        overdue_at, moment = silent_holder_found_at(moment)
        assert claims.claim(image, later(overdue_at), LEASE, 3).overdue
    decision = claims.claim(image, later(moment), LEASE, 3)
    assert (decision.proceed, decision.reason, decision.found_crash) == (False, "processing_crashed", True)
    assert claims.crash_message(image) == "Processing stopped 3 times before it could finish"


def test_renewing_keeps_a_long_job_from_counting_as_a_crash():
    image = unclaimed()
    token = claims.claim(image, NOW, LEASE, 3).token
    for moment in (10, 20, 30, 40):
        assert claims.renew(image, token, later(moment), LEASE)
    assert claims.claim(image, later(50), LEASE, 3).reason == "in_progress"
    assert image.processing_crashes == 0


def test_only_the_holder_renews_or_releases():
    image = unclaimed()
    token = claims.claim(image, NOW, LEASE, 3).token
    assert not claims.renew(image, "other", later(1), LEASE)
    assert not claims.release(image, "other")
    assert claims.release(image, token)
    assert not claims.renew(image, token, later(2), LEASE)


def test_a_released_claim_is_granted_again_without_a_crash():
    image = unclaimed()
    token = claims.claim(image, NOW, LEASE, 3).token
    claims.release(image, token)
    assert claims.claim(image, later(1), LEASE, 3).proceed
    assert (image.processing_attempts, image.processing_crashes) == (2, 0)


def test_replies_are_plain_data_for_rpc():
    image = unclaimed()
    granted = claims.claim(image, NOW, LEASE, 3)
    assert granted.as_reply() == {"proceed": True, "claim": image.claim_token, "lease_seconds": LEASE}
    waiting = claims.claim(image, later(1), LEASE, 3)
    assert waiting.as_reply() == {"proceed": False, "reason": "in_progress", "retry_after": 14}
    overdue = claims.claim(image, later(LEASE + 1), LEASE, 3)
    assert overdue.as_reply() == {"proceed": False, "reason": "in_progress", "retry_after": LAST_CHANCE, "overdue": True}
