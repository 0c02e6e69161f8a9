"""Who is processing an image, and whether the last one died: claims with a lease.

A message can be delivered again while its first worker is still running (RabbitMQ restarted and
took back the unacknowledged message) or after the worker died (kill -9, out of memory). Only the
second is a crash. So a worker claims an image before it processes it and holds a lease that it
renews while it works (process_service renews every third of the lease):

- no open claim (never started, or released after a transient failure): the claim is granted;
- an open claim whose lease still runs: someone is on it; the caller waits for the lease and asks
  again (its message stays in the broker in case that someone dies);
- an open claim whose lease ran out: its holder died without a word. That is a crash; after
  MAX_PROCESSING_ATTEMPTS of them the image fails with `processing_crashed`.

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

    def as_reply(self):
        if self.proceed:
            return {"proceed": True, "claim": self.token, "lease_seconds": self.lease_seconds}
        reply = {"proceed": False, "reason": self.reason}
        if self.wait_seconds:
            reply["retry_after"] = self.wait_seconds
        return reply


def claim(image, now, lease_seconds, max_crashes, alongside_others=False):
    """Decides on a claim for a locked, unfinished image row and updates the row to match.
    `alongside_others`: the caller would run the job beside others (then a suspect is refused)."""
    found_crash = False
    if image.claim_token is not None:
        if image.claim_expires_at > now:
            left = (image.claim_expires_at - now).total_seconds()
            return Claim(False, "in_progress", wait_seconds=max(1, math.ceil(left)))
        image.processing_crashes += 1
        image.claim_token = None
        found_crash = True
        if image.processing_crashes >= max_crashes:
            return Claim(False, ImageFailure.PROCESSING_CRASHED, found_crash=True)
    if image.processing_crashes and alongside_others:
        return Claim(False, "run_alone", found_crash=found_crash)
    image.processing_attempts += 1
    image.claim_token = uuid.uuid4().hex
    image.claim_expires_at = now + dt.timedelta(seconds=lease_seconds)
    return Claim(True, token=image.claim_token, lease_seconds=lease_seconds, found_crash=found_crash)


def renew(image, token, now, lease_seconds):
    """Extends the lease of the claim `token`; False if the claim is no longer that worker's."""
    if image.claim_token != token:
        return False
    image.claim_expires_at = now + dt.timedelta(seconds=lease_seconds)
    return True


def release(image, token):
    """Ends the claim `token` without a result (a transient failure: the message is retried)."""
    if image.claim_token != token:
        return False
    image.claim_token = None
    image.claim_expires_at = None
    return True


def crash_message(image):
    return f"Processing stopped {image.processing_crashes} times before it could finish"
