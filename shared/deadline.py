"""Broker calls that return by their deadline, even when the broker stops reading.

An `eventlet.Timeout` around a kombu publish is not enough. While RabbitMQ holds a resource alarm
(disk or memory) it stops reading from publishing connections; the timeout does interrupt the wait
for the confirm, but on its way out kombu replaces the connection and closes its channel politely,
waiting for a `close-ok` the broker will only send once the alarm ends. The caller (an upload
request, holding a worker and a database transaction) would wait as long as the alarm lasts.

So the call runs in a greenthread of its own, bounded by the same timeout, and the caller waits for
it no longer than that: it gets `error` at the deadline while the greenthread finishes its cleanup
whenever the broker lets it. `stalled()` counts such calls still running; callers that can leave
the work to a timer (the outbox's fast path in a request) skip the broker while it is non-zero.
`wait_within()` is the waiting half on its own, for work that cannot be interrupted at all (a
pipeline in a native thread, process_service): the caller leaves, the work ends when it ends.
"""
import contextvars

import eventlet

# The caller waits this much longer than the call's own timeout, so that a call that merely timed
# out ends by itself and only one stuck in its cleanup is left behind (and counted).
GRACE_SECONDS = 0.1

_stalled = 0


def stalled():
    """How many calls of this process are still running past their deadline."""
    return _stalled


def call_within(seconds, error, function, *args, **kwargs):
    """`function(*args, **kwargs)`, or `error` raised after `seconds` (at most GRACE_SECONDS later)."""
    worker = eventlet.spawn(contextvars.copy_context().run, _bounded, seconds, error, function, args, kwargs)
    returned, outcome = wait_within(worker, seconds + GRACE_SECONDS, error, on_late=_count_until_done)
    if returned:
        return outcome
    raise outcome


def wait_within(worker, seconds, error, on_late):
    """`worker.wait()`, or `error` raised after `seconds`; a greenthread still running then is
    handed to `on_late(worker)` (to count it, or to clean up after it whenever it ends)."""
    try:
        with eventlet.Timeout(seconds, error):
            return worker.wait()
    except BaseException as exc:
        if exc is error and not worker.dead:
            on_late(worker)
        raise


def _bounded(seconds, error, function, args, kwargs):
    try:
        with eventlet.Timeout(seconds, error):
            return True, function(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the caller raises it (eventlet would print it here)
        return False, exc


def _count_until_done(worker):
    global _stalled
    _stalled += 1

    def done(_):
        global _stalled
        _stalled -= 1

    worker.link(done)
