"""The first jobs of a fresh process_service (and the first validations of a fresh upload_service),
all at once, in native threads: whatever a library loads on first use (imagecodecs loads its
codecs lazily, under a lock that eventlet's monkey patch turns green) must already be loaded, or
contended threads wait on each other for good.

A fresh interpreter each time: in this one, earlier tests have loaded everything already."""
import json
import subprocess
import sys
import textwrap

import pytest

from shared.config import REPO_ROOT

# Each output format's encoder, and every operation (OpenCV's and Pillow's filters, FreeType).
PIPELINES = [[{"type": "convert", "format": output}] for output in ("png", "jpeg", "webp", "avif", "tiff", "gif")] + [[
    {"type": "resize", "width": 48}, {"type": "crop", "left": 1, "top": 1, "width": 40, "height": 30},
    {"type": "rotate", "degrees": 30}, {"type": "flip", "direction": "horizontal"}, {"type": "grayscale"},
    {"type": "blur", "radius": 2}, {"type": "blur", "radius": 20}, {"type": "sharpen", "amount": 1, "radius": 2},
    {"type": "watermark", "text": "cold"}, {"type": "compress", "quality": 60},
]]

FIRST_JOBS = textwrap.dedent("""
    import eventlet
    eventlet.monkey_patch()
    import json
    import sys
    from eventlet import tpool
    from PIL import Image
    from imaging.pipeline import process_image  # what process_service imports at start
    from imaging.validation import validate_operations
    import imagecodecs
    # The race below is caught about every other run; this known case, every time.
    assert "png_encode" in vars(imagecodecs), "imagecodecs' PNG codec is still to load on first use"

    folder, operations = sys.argv[1], validate_operations(json.loads(sys.argv[2]))
    Image.new("RGB", (64, 48), "teal").save(f"{folder}/in.png")

    def one(index):
        return tpool.execute(process_image, f"{folder}/in.png", operations, f"{folder}/out-{index}", 10**8)

    pool = eventlet.GreenPool(8)
    with eventlet.Timeout(20, SystemExit("deadlock: the first jobs did not finish")):
        results = list(pool.imap(one, range(8)))
    assert len(results) == 8 and len({result["size_bytes"] for result in results}) == 1, results
    print("ok")
""")


def run_in_a_fresh_interpreter(script, *args):
    finished = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,  # deadlocked threads outlive SystemExit
    )
    assert finished.returncode == 0 and finished.stdout.strip() == "ok", finished.stderr[-3000:]


@pytest.mark.parametrize("operations", PIPELINES, ids=lambda operations: operations[0].get("format", "every-operation"))
def test_the_first_jobs_of_a_fresh_process_all_finish(tmp_path, operations):
    run_in_a_fresh_interpreter(FIRST_JOBS, tmp_path, json.dumps(operations))


FIRST_VALIDATIONS = textwrap.dedent("""
    import eventlet
    eventlet.monkey_patch()
    import sys
    from eventlet import tpool
    from PIL import Image
    from imaging import decoding  # what upload_service validates uploads with

    folder = sys.argv[1]
    formats = ["png", "jpeg", "webp", "avif", "tiff", "gif", "bmp"]
    for name in formats:
        Image.new("RGB", (64, 48), "teal").save(f"{folder}/in.{name}")

    def one(index):
        return tpool.execute(decoding.inspect_image, f"{folder}/in.{formats[index % len(formats)]}", 10**8)

    pool = eventlet.GreenPool(14)
    with eventlet.Timeout(20, SystemExit("deadlock: the first validations did not finish")):
        results = list(pool.imap(one, range(14)))
    assert len(results) == 14, results
    print("ok")
""")


def test_the_first_validations_of_a_fresh_process_all_finish(tmp_path):
    run_in_a_fresh_interpreter(FIRST_VALIDATIONS, tmp_path)


UPLOAD_SERVICE_IMPORTS = textwrap.dedent("""
    import sys
    import upload_service.service
    heavy = sorted(name for name in ("cv2", "numpy", "imagecodecs", "imaging.transforms", "imaging.pipeline") if name in sys.modules)
    assert not heavy, f"upload_service loaded {heavy}: it only validates operations and inspects uploads"
    print("ok")
""")


def test_upload_service_loads_what_validation_needs_and_no_image_processing():
    run_in_a_fresh_interpreter(UPLOAD_SERVICE_IMPORTS)
