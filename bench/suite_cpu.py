"""Suite CPU per image (issue 15): what every process of the suite spends per upload, against the
same image work done once in one Python process with Pillow, measured in the same run.

    .venv/bin/python -m bench.suite_cpu [--images N] [--task jpeg|png|webp]

One fresh private suite (bench.suite), one user (signup and login happen before the measured phase,
so their bcrypt is left out). Per task: a warm-up of CONCURRENCY images, then N images in a closed
loop at concurrency CONCURRENCY (each client: upload -> long-poll until `completed` -> next). The
CPU time (utime + stime from /proc/<pid>/stat) of every process is read just before the first
measured upload and again once the last image's email is in the mail folder, and divided by the
number of images:
- the four services, nginx (master + workers), honcho (it relays every log line of the services);
- RabbitMQ (beam.smp), PostgreSQL (the backends connected to the suite's database) and Redis:
  these servers are shared with other work on the machine (the tests' vhosts and databases), so a
  run beside other load over-counts them; the run prints the other load seen before it.
The benchmark client itself is printed apart and is not part of the suite's figure.

Reference, same run, same process (this one, before the suite starts and again after it stopped:
nothing else runs in it then): the task done once with plain Pillow, median CPU time
(`time.process_time`) of 2 x REFERENCE_ROUNDS:
- jpeg: open, JPEG draft to the target scale, resize to fit 800x600 (LANCZOS), encode JPEG q80;
- png:  open the 1000x1000 PNG, grayscale, GaussianBlur(2), UnsharpMask(2, 100%, 0), encode PNG;
- webp: open, draft, resize to 1600 px wide (LANCZOS), encode WebP q80 (method 4).
The project's own pipeline (`imaging.pipeline.process_image`, one call, what process_service runs
in a thread) is printed beside it for information: the suite's figure over that one is the cost of
being a suite rather than a function call.

Targets (JPEG task): suite CPU per image <= 1.3x the reference; >= 24 images/s at concurrency 50.
PNG and WebP: information.
"""
import argparse
import asyncio
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageFilter

from bench import client, images
from bench.common import (
    check,
    cpu_seconds,
    info,
    median,
    others_cpu_load,
    total_cpu_seconds,
    print_machine,
    print_stats_table,
    print_table,
    save_results,
)
from bench.suite import DATABASE, SUITE_FOLDER, Suite
from tests.support.processes import children_of

NAME = "suite_cpu"
CONCURRENCY = 50
RATIO_TARGET = 1.3
THROUGHPUT_TARGET = 24.0
REFERENCE_ROUNDS = 15
EMAIL_WAIT_S = 20
IMAGE_DEADLINE_S = 120

TASKS = {
    "jpeg": {
        "label": "4000x3000 JPEG -> resize 800x600 + compress 80",
        "input": images.latency_photo,
        "filename": "photo.jpg",
        "content_type": "image/jpeg",
        "operations": [{"type": "resize", "width": 800, "height": 600}, {"type": "compress", "quality": 80}],
        "images": 200,
    },
    "png": {
        "label": "1000x1000 PNG -> grayscale + blur 2 + sharpen",
        "input": images.png_square,
        "filename": "square.png",
        "content_type": "image/png",
        "operations": [{"type": "grayscale"}, {"type": "blur", "radius": 2}, {"type": "sharpen"}],
        "images": 200,
    },
    "webp": {
        "label": "4000x3000 JPEG -> resize 1600 + WebP q80",
        "input": images.latency_photo,
        "filename": "photo.jpg",
        "content_type": "image/jpeg",
        "operations": [{"type": "resize", "width": 1600}, {"type": "convert", "format": "webp"},
                       {"type": "compress", "quality": 80}],
        "images": 100,
    },
    # Not in the default run: what the suite spends per upload whatever the image (the fixed cost).
    "small": {
        "label": "640x480 JPEG -> resize 320",
        "input": images.small_photo,
        "filename": "small.jpg",
        "content_type": "image/jpeg",
        "operations": [{"type": "resize", "width": 320}],
        "images": 200,
    },
}
DEFAULT_TASKS = ("jpeg", "png", "webp")

# The rows of the table, in this order; the servers last (shared with other work on the machine).
SUITE_ROWS = ["upload_service", "process_service", "notification_service", "user_service", "nginx", "honcho",
              "RabbitMQ", "PostgreSQL", "Redis"]


# -- the one-process references ---------------------------------------------------------------------


def pillow_reference(task, data):
    """The task done once with plain Pillow, from bytes in memory to encoded bytes in memory."""
    image = Image.open(io.BytesIO(data))
    out = io.BytesIO()
    if task == "jpeg":
        image.draft("RGB", (800, 600))
        image = image.convert("RGB")
        scale = min(800 / image.width, 600 / image.height)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        image.save(out, "JPEG", quality=80)
    elif task == "webp":
        width = 1600
        image.draft("RGB", (width, round(image.height * width / image.width)))
        image = image.convert("RGB")
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        image.save(out, "WEBP", quality=80, method=4)
    elif task == "small":
        image = image.convert("RGB").resize((320, 240), Image.Resampling.LANCZOS)
        image.save(out, "JPEG", quality=85)
    else:
        image = image.convert("L").filter(ImageFilter.GaussianBlur(2))
        image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=100, threshold=0))
        image.save(out, "PNG")
    return out.getbuffer().nbytes


def pipeline_reference(task, path):
    """What process_service runs for one image (decode, steps, encode to a file), in this thread."""
    from imaging.pipeline import process_image
    from imaging.validation import validate_operations

    operations = validate_operations(TASKS[task]["operations"])
    with tempfile.TemporaryDirectory() as folder:
        process_image(str(path), operations, f"{folder}/out", 50_000_000)


def cpu_samples(function, rounds=REFERENCE_ROUNDS, warmups=2):
    for _ in range(warmups):
        function()
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        function()
        samples.append(time.process_time() - started)
    return samples


def reference_samples(task):
    """CPU seconds of the Pillow reference and of the pipeline, REFERENCE_ROUNDS each."""
    path = TASKS[task]["input"]()
    data = path.read_bytes()
    return cpu_samples(lambda: pillow_reference(task, data)), cpu_samples(lambda: pipeline_reference(task, path))


# -- the processes of the suite ---------------------------------------------------------------------


def pids_of_program(name):
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def postgres_backends(database=DATABASE):
    """PIDs of the PostgreSQL backends connected to the suite's database."""
    query = f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'"
    found = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-c", query],
                           capture_output=True, text=True, timeout=10).stdout.split()
    return [int(pid) for pid in found]


def suite_processes(suite):
    """{row of the table: [pids]} for every process whose CPU the table counts."""
    pids = suite.pids
    return {
        "upload_service": [pids["upload_service"]],
        "process_service": [pids["process_service"]],
        "notification_service": [pids["notification_service"]],
        "user_service": [pids["user_service"]],
        "nginx": [pids["nginx"], *children_of(pids["nginx"])],
        "honcho": [suite.process.pid],
        "RabbitMQ": pids_of_program("beam.smp"),
        "PostgreSQL": postgres_backends(),
        "Redis": pids_of_program("redis-server"),
        "bench client": [os.getpid()],
    }


def thread_cpu(pid):
    """{thread id: CPU seconds} of every thread of `pid` (the event loop's thread id is the pid)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        seconds = cpu_seconds(f"{pid}/task/{task.name}")
        if seconds is not None:
            found[int(task.name)] = seconds
    return found


def cpu_by_row(processes):
    readings = {row: {pid: cpu_seconds(pid) for pid in pids} for row, pids in processes.items()}
    # The services' own split: the event loop (every request, RPC, event, log line) against the
    # native threads (Pillow's decode and the pipeline, bcrypt), which a profile cannot tell apart
    # by samples (niced threads waiting for a core count as busy there).
    for service in ("upload_service", "process_service"):
        pid = processes[service][0]
        threads = thread_cpu(pid)
        readings[f"{service}: event loop"] = {pid: threads.get(pid)}
        readings[f"{service}: native threads"] = {
            f"{pid}/task/{tid}": seconds for tid, seconds in threads.items() if tid != pid}
    return readings


def cpu_used(before, after):
    """CPU seconds per row between two readings; a process seen only in the second (a new database
    backend) counts from zero, one gone since the first is lost (its time went with it)."""
    used = {}
    for row, now in after.items():
        then = before.get(row, {})
        used[row] = sum((now[pid] or 0) - (then.get(pid) or 0) for pid in now if now[pid] is not None)
    return used


# -- the load ---------------------------------------------------------------------------------------


async def closed_loop(suite, session, token, spec, data, total):
    """`total` images at CONCURRENCY; returns (seconds from the first upload to the last completion
    seen, completed, failures)."""
    queue = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)
    done, failures = [], []

    async def one_client():
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            code, body, error, _, _ = await client.upload(session, suite.gateway, token, data, spec["operations"],
                                                          filename=spec["filename"],
                                                          content_type=spec["content_type"])
            if code != 202:
                failures.append(f"upload {code}: {body or error}")
                continue
            final, seen = await client.wait_final(session, suite.gateway, token, body["image"]["id"],
                                                  wait=60, deadline_s=IMAGE_DEADLINE_S)
            if final.get("status") == "completed":
                done.append(seen)
            else:
                failures.append(f"image ended {final.get('status')}: {final.get('error')}")

    started = time.time()
    await asyncio.gather(*(one_client() for _ in range(CONCURRENCY)))
    return (max(done) if done else time.time()) - started, len(done), failures


def emails_sent():
    folder = SUITE_FOLDER / "outbox"
    return sum(1 for _ in folder.rglob("*") if _.is_file()) if folder.exists() else 0


def wait_for_emails(count, timeout=EMAIL_WAIT_S):
    """Until `count` emails are in the mail folder: the announcement is part of an upload's work."""
    deadline = time.monotonic() + timeout
    while emails_sent() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return emails_sent()


def start_profilers(suite, task, folder):
    """py-spy on every service for the measured phase (`--profile`): where the time goes, as
    collapsed stacks (one file per service and task; `--nonblocking`: the services are not paused)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(suite.pids[service]), "--rate", "200", "--nonblocking",
                          "--format", "raw", "-o", str(folder / f"{task}-{service}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for service in ("upload_service", "process_service", "notification_service", "user_service")
    ]


def stop_profilers(profilers):
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for profiler in profilers:
        profiler.wait(timeout=60)


async def measure_task(suite, session, token, task, count, profile_dir=None):
    spec = TASKS[task]
    data = spec["input"]().read_bytes()
    warmup_emails = emails_sent()
    _, warmed, _ = await closed_loop(suite, session, token, spec, data, CONCURRENCY)
    wait_for_emails(warmup_emails + warmed)  # the warm-up's emails are not the phase's work
    emails_before = emails_sent()
    processes = suite_processes(suite)
    profilers = start_profilers(suite, task, profile_dir) if profile_dir else []
    machine_before = total_cpu_seconds()
    before = cpu_by_row(processes)
    wall0 = time.monotonic()
    seconds, completed, failures = await closed_loop(suite, session, token, spec, data, count)
    emails = wait_for_emails(emails_before + completed) - emails_before
    processes["PostgreSQL"] = sorted(set(processes["PostgreSQL"]) | set(postgres_backends()))
    after = cpu_by_row(processes)
    machine_after = total_cpu_seconds()
    stop_profilers(profilers)
    used = cpu_used(before, after)
    ours = sum(used[row] for row in SUITE_ROWS) + used["bench client"]
    # What the rest of the machine used meanwhile (another build, other tests): the images/s of a
    # shared machine say little without it.
    busy, total = (machine_after[0] - machine_before[0]), (machine_after[1] - machine_before[1])
    others_cores = max(0.0, busy - ours) / (total / (os.cpu_count() or 1))
    return {
        "task": task, "images": completed, "seconds": seconds, "images_per_s": completed / seconds,
        "emails": emails, "failures": failures, "phase_wall_s": time.monotonic() - wall0,
        "other_load_cores": others_cores,
        "cpu_ms_per_image": {row: used[row] * 1000 / max(completed, 1) for row in used},
    }


async def run_tasks(suite, tasks, counts, profile_dir=None):
    async with client.new_session() as session:
        token, _, _ = await client.make_user(session, suite.gateway)
        return [await measure_task(suite, session, token, task, counts[task], profile_dir) for task in tasks]


# -- the report -------------------------------------------------------------------------------------


def task_results(run, references, out):
    task = run["task"]
    per_image = run["cpu_ms_per_image"]
    suite_ms = sum(per_image[row] for row in SUITE_ROWS)
    pillow_ms, pipeline_ms = references[task]
    rows = []
    for row in SUITE_ROWS:
        rows.append([row, per_image[row], per_image[row] / suite_ms * 100])
        for part in ("event loop", "native threads"):
            if f"{row}: {part}" in per_image:
                rows.append([f"  of which {part}", per_image[f"{row}: {part}"], per_image[f"{row}: {part}"] / suite_ms * 100])
    rows.append(["whole suite", suite_ms, 100.0])
    rows.append(["(bench client, not counted)", per_image["bench client"], float("nan")])
    rows.append(["reference: Pillow, one process", pillow_ms, float("nan")])
    rows.append(["(info: imaging.pipeline, one call)", pipeline_ms, float("nan")])
    out(f"\n-- {task}: {TASKS[task]['label']}; {run['images']} images at concurrency {CONCURRENCY} "
        f"in {run['seconds']:.1f} s, {run['emails']} emails")
    print_stats_table(rows, ["process", "CPU ms per image", "% of suite"], out=out)
    for failure in run["failures"][:5]:
        out(f"   failure: {failure}")
    ratio = suite_ms / pillow_ms
    if task == "jpeg":
        results = [
            info(NAME, "jpeg: whole suite CPU per image", suite_ms, "ms"),
            info(NAME, "jpeg: reference (Pillow, one process)", pillow_ms, "ms"),
            check(NAME, "jpeg: suite / reference", ratio, "x", "<=", RATIO_TARGET),
            check(NAME, f"jpeg: images/s at c={CONCURRENCY}", run["images_per_s"], "img/s", ">=", THROUGHPUT_TARGET),
        ]
    else:
        results = [
            info(NAME, f"{task}: whole suite CPU per image", suite_ms, "ms"),
            info(NAME, f"{task}: reference (Pillow, one process)", pillow_ms, "ms"),
            info(NAME, f"{task}: suite / reference", ratio, "x"),
            info(NAME, f"{task}: images/s at c={CONCURRENCY}", run["images_per_s"], "img/s"),
        ]
    results.append(info(NAME, f"{task}: suite / imaging.pipeline", suite_ms / pipeline_ms, "x"))
    cores = os.cpu_count() or 1
    results.append(info(NAME, f"{task}: ceiling of {cores} cores at this CPU per image", cores * 1000 / suite_ms, "img/s",
                        note="the suite alone on the machine, every core busy"))
    results.append(info(NAME, f"{task}: other load during the phase", run["other_load_cores"], "cores"))
    lost = len(run["failures"]) + max(0, run["images"] - run["emails"])
    if lost:
        results.append(check(NAME, f"{task}: failed images or missing emails", lost, "", "<=", 0, shown_limit="0",
                             note="; ".join(sorted(set(run["failures"])))[:300]))
    return results


def run(count=None, tasks=None, out=print, profile_dir=None):
    tasks = tasks or list(DEFAULT_TASKS)
    counts = {task: count or TASKS[task]["images"] for task in tasks}
    print_machine(out)
    out(f"other load on the machine before the run: {others_cpu_load():.2f} cores busy")
    # The reference is measured before the suite starts and again after it stopped, and the median
    # of both taken: the same work costs more CPU time while the machine is busier (other builds on
    # the shared cores), and the suite's phase lies between the two.
    before = {task: reference_samples(task) for task in tasks}
    suite = Suite(out=out).start()
    try:
        runs = asyncio.run(run_tasks(suite, tasks, counts, profile_dir))
    finally:
        suite.stop()
    references = {}
    for task in tasks:
        after = reference_samples(task)
        references[task] = tuple(median(first + second) * 1000 for first, second in zip(before[task], after))
        out(f"reference {task}: Pillow {median(before[task][0]) * 1000:.1f} ms before the suite, "
            f"{median(after[0]) * 1000:.1f} ms after; imaging.pipeline {median(before[task][1]) * 1000:.1f} / "
            f"{median(after[1]) * 1000:.1f} ms")
    results = []
    for each in runs:
        results.extend(task_results(each, references, out))
    print_table(results, "suite CPU per image", out)
    save_results(NAME, results, {"runs": runs, "references_ms": references})
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="measured images per task (default: 200 JPEG/PNG, 100 WebP)")
    parser.add_argument("--task", choices=list(TASKS), action="append")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="also record every service with py-spy during the measured phase (CPU figures then include its sampling)")
    args = parser.parse_args(argv)
    results = run(count=args.images, tasks=args.task, profile_dir=args.profile)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
