"""CPU-bound work off the event loop: Pillow and bcrypt run in native threads (eventlet's tpool),
at a lower CPU priority than the event loop.

Under eventlet one OS thread runs every greenlet of a service: requests, long-poll wake-ups,
probes, AMQP heartbeats. CPU-bound calls run in tpool threads so that this thread is not blocked;
they are also niced (Linux keeps a nice value per thread), so that when the cores are busy the
event loop, which only needs them for moments, runs first, and the CPU-bound work still gets every
cycle left over.
"""
import contextvars
import math
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


def usable_cores():
    """The cores this process may use: those it may run on (taskset, cpuset), and no more than its
    container's CPU quota (a Kubernetes or Compose CPU limit), rounded up: threads beyond it would
    only be throttled."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cpu_quota(root="/sys/fs/cgroup"):
    """The CPU limit of this process's cgroup in cores (cgroup v2 `cpu.max`, v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us`, as a container sees its own), None without one."""
    try:
        quota, period = open(f"{root}/cpu.max").read().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(open(f"{root}/cpu/cpu.cfs_quota_us").read())
        period = int(open(f"{root}/cpu/cpu.cfs_period_us").read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def in_native_threads(jobs, workers):
    """Runs each job (a callable without arguments) on up to `workers` native threads, the caller's
    among them, and returns `[(result, None) or (None, exception)]` in the jobs' order, once all
    have ended. Native threads even under eventlet's monkey-patching: this is called from a tpool
    thread, where green threads would run one after the other. A new thread inherits the calling
    thread's nice value (Linux keeps it per thread)."""
    outcomes = [None] * len(jobs)
    next_job = iter(range(len(jobs)))
    taking = _native_threading.Lock()

    def work():
        while True:
            with taking:
                index = next(next_job, None)
            if index is None:
                return
            try:
                outcomes[index] = (jobs[index](), None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which decides
                outcomes[index] = (None, exc)

    helpers = [_native_threading.Thread(target=work, daemon=True) for _ in range(max(0, min(workers, len(jobs)) - 1))]
    for helper in helpers:
        helper.start()
    work()
    for helper in helpers:
        helper.join()
    return outcomes
