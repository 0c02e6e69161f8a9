"""shared/deadline.py: a broker call returns by its deadline even when its cleanup cannot."""
import contextvars
import time

import eventlet
import pytest
from eventlet.event import Event

from shared import deadline

DEADLINE = 0.2


class Late(Exception):
    pass


def test_a_call_in_time_returns_its_value_or_raises_its_own_error():
    assert deadline.call_within(DEADLINE, Late(), lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(KeyError):
        deadline.call_within(DEADLINE, Late(), {}.__getitem__, "missing")
    assert deadline.stalled() == 0


def test_the_call_sees_the_callers_context():
    """The current span (a context variable) is the caller's, so the publish joins its trace."""
    current = contextvars.ContextVar("current")
    current.set("the caller's span")
    assert deadline.call_within(DEADLINE, Late(), current.get) == "the caller's span"


def test_a_call_whose_cleanup_blocks_returns_at_the_deadline_and_counts_as_stalled():
    """Like kombu under a resource alarm: the timeout interrupts the wait for the confirm, then
    closing the channel waits for an answer the broker gives only when the alarm ends."""
    alarm_over = Event()

    def publish_under_an_alarm():
        try:
            eventlet.sleep(60)  # the confirm that does not come
        finally:
            alarm_over.wait()  # the polite channel close

    started = time.monotonic()
    with pytest.raises(Late):
        deadline.call_within(DEADLINE, Late(), publish_under_an_alarm)
    assert time.monotonic() - started < DEADLINE + deadline.GRACE_SECONDS + 0.1
    assert deadline.stalled() == 1

    alarm_over.send()
    eventlet.sleep(0.01)
    assert deadline.stalled() == 0


def test_a_call_that_merely_times_out_ends_by_itself_and_is_not_stalled():
    with pytest.raises(Late):
        deadline.call_within(DEADLINE, Late(), eventlet.sleep, 60)
    assert deadline.stalled() == 0
