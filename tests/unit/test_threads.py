"""CPU-bound work runs in a native thread at a lower priority, with the caller's context."""
import contextvars
import os

import eventlet
import pytest
from eventlet import patcher

from shared import threads
from shared.threads import CPU_WORK_NICENESS, cpu_quota, in_native_threads, run_in_thread, usable_cores

native_threading = patcher.original("threading")
request_id = contextvars.ContextVar("request_id", default=None)


def where_and_how_nice():
    thread_id = native_threading.get_native_id()
    return thread_id, os.getpriority(os.PRIO_PROCESS, thread_id), request_id.get()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="per-thread priorities are Linux's")
def test_work_runs_niced_in_another_thread_and_the_loop_is_not():
    loop_thread = native_threading.get_native_id()
    loop_nice = os.getpriority(os.PRIO_PROCESS, loop_thread)
    request_id.set("r-1")
    thread_id, nice, seen = run_in_thread(where_and_how_nice)
    assert thread_id != loop_thread
    assert nice == max(loop_nice, CPU_WORK_NICENESS)
    assert seen == "r-1", "the caller's context goes along"
    assert os.getpriority(os.PRIO_PROCESS, loop_thread) == loop_nice, "the event loop keeps its priority"


def test_the_event_loop_goes_on_while_the_work_runs():
    ticks = []
    ticker = eventlet.spawn(lambda: [ticks.append(eventlet.sleep(0.01)) for _ in range(20)])
    run_in_thread(__import__("time").sleep, 0.3)  # blocks its native thread, not the loop
    ticker.wait()
    assert len(ticks) == 20


def test_jobs_run_side_by_side_on_native_threads_and_answer_in_order():
    # Two jobs that each wait for the other: they finish only if they run at the same time.
    both_started = native_threading.Barrier(2, timeout=10)

    def job(value, meet=True):
        def run():
            if meet:
                both_started.wait()
            if value == "bad":
                raise ValueError(value)
            return value, where_and_how_nice()[:2]
        return run

    outcomes = run_in_thread(in_native_threads, [job("a"), job("bad"), job("c", meet=False)], 2)
    assert [(result or (None,))[0] for result, _ in outcomes[::2]] == ["a", "c"]
    assert isinstance(outcomes[1][1], ValueError) and outcomes[1][0] is None
    assert native_threading.get_native_id() not in {result[1][0] for result, _ in (outcomes[0], outcomes[2])}
    assert {result[1][1] for result, _ in (outcomes[0], outcomes[2])} == {max(os.getpriority(os.PRIO_PROCESS, 0), CPU_WORK_NICENESS)}


def test_usable_cores_is_this_process_affinity_within_its_cpu_quota(tmp_path, monkeypatch):
    assert usable_cores() <= len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a container limited to 1.5 cores (v2)
    assert cpu_quota(tmp_path) == 1.5
    monkeypatch.setattr(threads, "cpu_quota", lambda: 1.5)
    assert usable_cores() == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert cpu_quota(v1) == 0.5
