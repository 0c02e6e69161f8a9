"""The pipeline runs in native threads (eventlet's tpool) many at a time: it must never take a lock
that eventlet patched (metrics, tracing, logging), or contended threads deadlock for good."""
import eventlet
from eventlet import tpool
from PIL import Image

from imaging.pipeline import process_image

OPERATIONS = [{"type": "resize", "width": 32, "fit": "contain"}, {"type": "blur", "radius": 1}]


def test_many_pipelines_in_native_threads_at_once_all_finish(tmp_path):
    source = tmp_path / "in.png"
    Image.new("RGB", (200, 150), "teal").save(source)

    def run_many(index):
        for round_ in range(15):
            timings = []
            tpool.execute(process_image, str(source), OPERATIONS, str(tmp_path / f"out-{index}-{round_}"), 10**8, timings)
            assert [step for step, *_ in timings] == ["decode", "resize", "blur", "encode"]
        return index

    pool = eventlet.GreenPool(10)
    with eventlet.Timeout(60, AssertionError("pipelines stopped making progress: a deadlock")):
        assert sorted(pool.imap(run_many, range(10))) == list(range(10))
