"""Throughput: images per second at concurrency 20 with one process_service process, then with as
many as the machine has cores (2).

    .venv/bin/python -m bench.throughput [--images N]

20 client tasks each loop: upload (through the gateway) -> long-poll until `completed` -> next.
Each configuration first runs a warm-up round of 20 images, then N measured images; throughput is
N / (time from the first measured upload to the last completion seen). The second process_service
is started exactly as the Procfile starts the first (same environment, its own HTTP port) and
shares the queue. CPU seconds of every process of the suite are sampled during each run, so the
table shows where the machine's two cores went.

Task: the latency benchmark's (4000x3000 photo-like JPEG q90 -> resize 800x600, compress 80),
and a processing-heavy one (the same upload -> 1600 px WebP q80), where the pipeline is most of
the work per image. Target (issue requirement 3): 2 processes >= 1.6x the images/s of 1 process.
"""
import argparse
import asyncio
import sys
import time

from bench import client, images
from bench.common import Sampler, check, info, others_cpu_load, print_machine, print_stats_table, print_table, save_results
from bench.suite import Suite

NAME = "throughput"
CONCURRENCY = 20
EXTRA_PORT = 18113
TASKS = {
    "jpeg-800x600": [{"type": "resize", "width": 800, "height": 600}, {"type": "compress", "quality": 80}],
    "webp-1600": [{"type": "resize", "width": 1600}, {"type": "convert", "format": "webp"},
                  {"type": "compress", "quality": 80}],
}
TARGET = 1.6


async def _run_images(suite, session, token, data, operations, total):
    """Runs `total` images through at CONCURRENCY; returns (seconds, completed, failures)."""
    queue = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)
    failures = []
    done = []

    async def worker():
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            code, body, error, _, _ = await client.upload(session, suite.gateway, token, data, operations)
            if code != 202:
                failures.append(f"upload {code}: {body or error}")
                continue
            final, t_seen = await client.wait_final(session, suite.gateway, token, body["image"]["id"])
            if final.get("status") == "completed":
                done.append(t_seen)
            else:
                failures.append(f"image ended {final.get('status')}: {final.get('error')}")

    started = time.time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    end = max(done) if done else time.time()
    return end - started, len(done), failures


async def measure(suite, processes, operations, count, out):
    data = images.latency_photo().read_bytes()
    async with client.new_session() as session:
        token, _, _ = await client.make_user(session, suite.gateway)
        await _run_images(suite, session, token, data, operations, CONCURRENCY)  # warm-up
        with Sampler(suite.process_pids()) as sampler:
            seconds, completed, failures = await _run_images(suite, session, token, data, operations, count)
    return {
        "processes": processes,
        "seconds": seconds,
        "completed": completed,
        "failures": failures,
        "images_per_s": completed / seconds if seconds else float("nan"),
        "cpu": {name: sampler.cpu_used(name) for name in sampler.processes},
        "wall": sampler.wall,
        "machine_busy": sampler.machine_busy_fraction(),
    }


def run(suite=None, count=100, tasks=None, out=print):
    print_machine(out)
    own = suite is None
    suite = suite or Suite(out=out).start()
    results, extra = [], {}
    try:
        out(f"other load on the machine before the run: {others_cpu_load(suite.process_pids().values()):.2f} cores busy")
        for task in tasks or TASKS:
            operations = TASKS[task]
            runs = []
            for processes in (1, 2):
                started = None
                if processes == 2:
                    started = suite.start_process_service(EXTRA_PORT)
                try:
                    runs.append(asyncio.run(measure(suite, processes, operations, count, out)))
                finally:
                    if started is not None:
                        started.stop()
                        suite.extra.remove(started)
            extra[task] = runs
            out(f"\n-- throughput {task}: {count} images at concurrency {CONCURRENCY}, 4000x3000 JPEG, {operations}")
            rows = []
            for r in runs:
                cpu = r["cpu"]
                proc_cpu = sum(v or 0 for k, v in cpu.items() if k.startswith("process_service"))
                nginx_cpu = sum(v or 0 for k, v in cpu.items() if k.startswith("nginx"))
                rows.append([
                    f"{r['processes']} process_service", r["completed"], r["seconds"], r["images_per_s"],
                    proc_cpu / r["wall"], (cpu.get("upload_service") or 0) / r["wall"],
                    (cpu.get("notification_service") or 0) / r["wall"] + (cpu.get("user_service") or 0) / r["wall"],
                    nginx_cpu / r["wall"], r["machine_busy"] * 2,
                ])
                for failure in r["failures"][:5]:
                    out(f"   failure: {failure}")
            print_stats_table(rows, ["config", "images", "seconds", "images/s", "process cores", "upload cores",
                                     "notif+user cores", "nginx cores", "machine cores busy"], out=out)
            one, two = runs
            results.append(info(NAME, f"{task}: 1 process_service", one["images_per_s"], "img/s"))
            results.append(info(NAME, f"{task}: 2 process_service", two["images_per_s"], "img/s"))
            ratio = two["images_per_s"] / one["images_per_s"] if one["images_per_s"] else float("nan")
            results.append(check(NAME, f"{task}: 2 processes vs 1", ratio, "x", ">=", TARGET))
            lost = sum(len(r["failures"]) for r in runs)
            if lost:
                results.append(check(NAME, f"{task}: failed images", lost, "", "<=", 0))
    finally:
        if own:
            suite.stop()
    print_table(results, "throughput", out)
    save_results(NAME, results, extra)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--task", choices=list(TASKS), action="append")
    args = parser.parse_args(argv)
    results = run(count=args.images, tasks=args.task)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
