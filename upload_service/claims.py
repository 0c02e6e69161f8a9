"""Who is processing an image, and whether the last one died: claims with a lease.

A message can be delivered again while its first worker is still running (RabbitMQ restarted and
took back the unacknowledged message) or after the worker died (kill -9, out of memory). Only the
second is a crash. So a worker claims an image before it processes it and holds a lease that it
renews while it works (process_service renews every third of the lease):

- no open claim (never started, or released after a transient failure): the claim is granted;
- an open claim whose lease still runs: someone is on it; the caller waits for the lease and asks
  again (its message stays in the broker in case that someone dies);
- an open claim whose lease ran out: its holder died without a word, or it is alive but could
  not reach upload_service for a whole lease (renewals are RPCs: a broker outage longer than a
  lease cuts off every worker, and the broker redelivers their messages the moment it is back,
  before their next renewal). So the first caller to find the lease run out gives the holder one
  last chance: the lease is marked overdue and extended by two renewal periods, and the caller
  waits. A holder that renews meanwhile keeps its claim; one that stays silent is a crash. After
  MAX_PROCESSING_ATTEMPTS crashes the image fails with `processing_crashed`.

An image that was in hand when a worker died is a suspect: it may be what killed it, or it may
only have been beside the culprit. A caller that would run it alongside other jobs is told to run
it alone instead (`run_alone`; process_service/isolation.py), so that only a culprit crashes again.

A final status clears the claim; a final image is never claimed.
"""
import datetime as dt
import math
import uuid
from dataclasses import dataclass

from imaging.failures import ImageFailure


@dataclass(frozen=True)
class Claim:
    proceed: bool
    reason: str = ""
    token: str = ""
    lease_seconds: float = 0
    wait_seconds: int = 0
    found_crash: bool = False  # this call found the last holder's lease run out
    overdue: bool = False  # this call found the lease run out and gave its holder a last chance

    def as_reply(self):
        if self.proceed:
            return {"proceed": True, "claim": self.token, "lease_seconds": self.lease_seconds}
        reply = {"proceed": False, "reason": self.reason}
        if self.wait_seconds:
            reply["retry_after"] = self.wait_seconds
        if self.overdue:
            reply["overdue"] = True  # the wait is its holder's last chance, not proof that it is alive
        return reply


def claim(image, now, lease_seconds, max_crashes, alongside_others=False):
    """Decides on a claim for a locked, unfinished image row and updates the row to match.
    `alongside_others`: the caller would run the job beside others (then a suspect is refused)."""
    found_crash = False
    if image.claim_token is not None:
        if image.claim_expires_at > now:
            left = (image.claim_expires_at - now).total_seconds()
            return Claim(False, "in_progress", wait_seconds=max(1, math.ceil(left)))
        if image.claim_overdue_since is None:
            last_chance = last_chance_seconds(lease_seconds)
            image.claim_overdue_since = now
            image.claim_expires_at = now + dt.timedelta(seconds=last_chance)
            return Claim(False, "in_progress", wait_seconds=math.ceil(last_chance), overdue=True)
        image.processing_crashes += 1
        image.claim_token = image.claim_overdue_since = None
        found_crash = True
        if image.processing_crashes >= max_crashes:
            return Claim(False, ImageFailure.PROCESSING_CRASHED, found_crash=True)
    if image.processing_crashes and alongside_others:
        return Claim(False, "run_alone", found_crash=found_crash)
    image.processing_attempts += 1
    image.claim_token = uuid.uuid4().hex
    image.claim_expires_at = now + dt.timedelta(seconds=lease_seconds)
    return Claim(True, token=image.claim_token, lease_seconds=lease_seconds, found_crash=found_crash)


def last_chance_seconds(lease_seconds):
    """How long a holder whose lease ran out has to renew it: two of its renewal periods (it
    renews every third of the lease), so that one renewal may still fail while RPC reconnects."""
    return lease_seconds * 2 / 3


def renew(image, token, now, lease_seconds):
    """Extends the lease of the claim `token` (an overdue one too: its holder is alive); False if
    the claim is no longer that worker's."""
    if image.claim_token != token:
        return False
    image.claim_expires_at = now + dt.timedelta(seconds=lease_seconds)
    image.claim_overdue_since = None
    return True


def release(image, token):
    """Ends the claim `token` without a result (a transient failure: the message is retried)."""
    if image.claim_token != token:
        return False
    image.claim_token = image.claim_expires_at = image.claim_overdue_since = None
    return True


def crash_message(image):
    return f"Processing stopped {image.processing_crashes} times before it could finish"
