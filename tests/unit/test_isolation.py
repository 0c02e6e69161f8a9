"""A redelivered job (a suspect after a crash) runs alone; fresh jobs run side by side."""
import eventlet

from process_service.isolation import Isolation


def run_jobs(isolation, jobs):
    """Spawns (name, alone, seconds) jobs a moment apart; returns the start/end events in order."""
    events = []

    def job(name, alone, seconds):
        with isolation.gate(alone=alone):
            events.append(f"{name} start")
            eventlet.sleep(seconds)
            events.append(f"{name} end")

    pool = eventlet.GreenPool()
    for name, alone, seconds in jobs:
        pool.spawn(job, name, alone, seconds)
        eventlet.sleep(0.001)
    pool.waitall()
    return events


def overlaps(events, name, other):
    return events.index(f"{name} start") < events.index(f"{other} end") and \
        events.index(f"{other} start") < events.index(f"{name} end")


def test_fresh_jobs_run_side_by_side():
    events = run_jobs(Isolation(), [("a", False, 0.05), ("b", False, 0.05)])
    assert overlaps(events, "a", "b")


def test_a_suspect_waits_for_the_running_jobs_and_runs_with_no_one():
    events = run_jobs(Isolation(), [
        ("a", False, 0.05), ("suspect", True, 0.05), ("later", False, 0.01), ("second suspect", True, 0.02),
    ])
    assert events.index("suspect start") > events.index("a end")
    for name in ("a", "later", "second suspect"):
        assert not overlaps(events, "suspect", name), events
    assert not overlaps(events, "second suspect", "later"), events


def test_suspects_go_before_fresh_jobs_that_keep_arriving():
    jobs = [("a", False, 0.02), ("suspect", True, 0.01)] + [(f"fresh {n}", False, 0.02) for n in range(5)]
    events = run_jobs(Isolation(), jobs)
    assert events.index("suspect start") < min(events.index(f"fresh {n} start") for n in range(5)), events


def test_a_suspect_killed_while_waiting_does_not_hold_the_others_back():
    isolation = Isolation()
    started = []

    def job(name, alone):
        with isolation.gate(alone=alone):
            started.append(name)
            eventlet.sleep(0.02)

    running = eventlet.spawn(job, "running", False)
    eventlet.sleep(0.001)
    suspect = eventlet.spawn(job, "suspect", True)
    eventlet.sleep(0.001)
    fresh = eventlet.spawn(job, "fresh", False)
    eventlet.sleep(0.001)
    suspect.kill()  # its worker is stopped while it waits
    running.wait()
    fresh.wait()
    assert started == ["running", "fresh"]
