"""CPU-bound work off the event loop: Pillow and bcrypt run in native threads (eventlet's tpool),
at a lower CPU priority than the event loop.

Under eventlet one OS thread runs every greenlet of a service: requests, long-poll wake-ups,
probes, AMQP heartbeats. CPU-bound calls run in tpool threads so that this thread is not blocked;
they are also niced (Linux keeps a nice value per thread), so that when the cores are busy the
event loop, which only needs them for moments, runs first, and the CPU-bound work still gets every
cycle left over.
"""
import contextvars
import os

from eventlet import patcher, tpool

_native_threading = patcher.original("threading")

CPU_WORK_NICENESS = 10
_lowered = set()  # native ids of tpool threads already niced (tpool reuses its threads)


def run_in_thread(fn, *args, **kwargs):
    """Runs CPU-bound `fn` in a native thread, with the caller's context. `fn` must not log, open
    spans or touch metrics: under eventlet those libraries' locks are green locks, and contending
    one from a native thread deadlocks. Return timings as data instead (see imaging.pipeline)."""
    return tpool.execute(_run_niced, contextvars.copy_context(), fn, args, kwargs)


def _run_niced(context, fn, args, kwargs):
    _lower_this_thread()
    return context.run(fn, *args, **kwargs)


def _lower_this_thread():
    thread_id = _native_threading.get_native_id()
    if thread_id in _lowered:
        return
    _lowered.add(thread_id)
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        if current < CPU_WORK_NICENESS:
            os.setpriority(os.PRIO_PROCESS, thread_id, CPU_WORK_NICENESS)
    except (OSError, AttributeError):  # not Linux, or not allowed: the work still runs
        pass
