"""The pixel budget bounds what is decoded at once by size, not by count."""
import eventlet

from imaging.budget import PixelBudget


def test_small_jobs_share_the_budget_and_a_big_one_waits():
    budget = PixelBudget(100)
    order = []

    def job(name, pixels, hold):
        with budget.reserve(pixels):
            order.append(f"{name} start")
            eventlet.sleep(hold)
            order.append(f"{name} end")

    pool = eventlet.GreenPool()
    pool.spawn(job, "a", 40, 0.05)
    pool.spawn(job, "b", 40, 0.05)
    eventlet.sleep(0)
    pool.spawn(job, "big", 90, 0.01)
    pool.waitall()
    assert order.index("big start") > order.index("a end")
    assert order.index("big start") > order.index("b end")
    assert order.index("b start") < order.index("a end"), "the two small ones ran together"
    assert budget.in_use == 0


def test_a_job_larger_than_the_whole_budget_still_runs_alone():
    budget = PixelBudget(100)
    with budget.reserve(1000):
        assert budget.in_use == 1000
    assert budget.in_use == 0


def test_the_budget_is_returned_when_a_job_fails():
    budget = PixelBudget(100)
    try:
        with budget.reserve(60):
            raise RuntimeError("decoder exploded")
    except RuntimeError:
        pass
    assert budget.in_use == 0
