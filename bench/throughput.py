"""Throughput: images per second at concurrency 20 with one process_service process, then with as
many as the machine has cores (2).

    .venv/bin/python -m bench.throughput [--images N]

20 client tasks each loop: upload (through the gateway) -> long-poll until `completed` -> next.
Each configuration first runs a warm-up round of 20 images, then N measured images (100 for the
JPEG task, 40 for the WebP one); throughput is N / (time from the first measured upload to the last
completion seen). An image not final 45 s after its upload counts as failed (lost). The second process_service
is started exactly as the Procfile starts the first (same environment, its own HTTP port) and
shares the queue. CPU seconds of every process of the suite are sampled during each run, so the
table shows where the machine's two cores went.

The figures after the ratio say why it is what it is: the whole machine's CPU per image (every
process: the suite, nginx, RabbitMQ, PostgreSQL, Redis, the client), process_service's part of it,
and the ceiling (cores / CPU per image) at which the machine is saturated. On a 2-core machine one
process_service already reaches most of that ceiling, so a second one has nothing to add there.

Task: the latency benchmark's (4000x3000 photo-like JPEG q90 -> resize 800x600, compress 80),
and a processing-heavy one (the same upload -> 1600 px WebP q80), where the pipeline is most of
the work per image. The ratio of 2 processes to 1 is printed for the record: its old target (>= 1.6x)
is replaced by bench.scaleout, where each instance has a CPU quota of its own.
"""
import argparse
import asyncio
import os
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
# Measured images per configuration (the WebP task is ~4x slower per image).
COUNTS = {"jpeg-800x600": 100, "webp-1600": 40}
# An image not final this long after its upload is counted as lost (a healthy run needs < 15 s).
IMAGE_DEADLINE_S = 45
STALL_S = 30


async def run_images(suite, session, token, data, operations, total, concurrency=CONCURRENCY, completions=None):
    """Runs `total` images through at `concurrency`; returns (seconds, completed, failures).
    `completions`, a list, receives the time each completion was seen."""
    queue = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)
    failures = []
    done = []
    progress = [time.time()]

    async def worker():
        while True:
            if time.time() - progress[0] > STALL_S:
                return  # nothing has completed for STALL_S: the suite is stuck; stop feeding it
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            code, body, error, _, _ = await client.upload(session, suite.gateway, token, data, operations)
            if code != 202:
                failures.append(f"upload {code}: {body or error}")
                continue
            final, t_seen = await client.wait_final(session, suite.gateway, token, body["image"]["id"],
                                                    wait=min(60, IMAGE_DEADLINE_S), deadline_s=IMAGE_DEADLINE_S)
            if final.get("status") == "completed":
                done.append(t_seen)
                if completions is not None:
                    completions.append(t_seen)
                progress[0] = time.time()
            else:
                failures.append(f"image ended {final.get('status')}: {final.get('error')}")

    started = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if queue.qsize():
        failures.append(f"stalled: no image completed for {STALL_S}s; {queue.qsize()} images not even uploaded")
    end = max(done) if done else time.time()
    return end - started, len(done), failures


async def measure(suite, processes, operations, count, out):
    data = images.latency_photo().read_bytes()
    async with client.new_session() as session:
        token, _, _ = await client.make_user(session, suite.gateway)
        await run_images(suite, session, token, data, operations, CONCURRENCY)  # warm-up
        with Sampler({**suite.process_pids(), "bench client": os.getpid()}) as sampler:
            seconds, completed, failures = await run_images(suite, session, token, data, operations, count)
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


def machine_ceiling(task, run):
    """What the whole machine spends per image (every process: the suite, nginx, the broker, the
    databases, the client) and the throughput at which its cores would all be busy. When one
    process_service already comes close to that ceiling, more processes on the same cores cannot
    add much: scaling out then needs cores of its own."""
    cores = os.cpu_count()
    completed = run["completed"] or float("nan")
    machine_ms = run["machine_busy"] * cores * run["wall"] * 1000 / completed
    process_ms = sum(v or 0 for k, v in run["cpu"].items() if k.startswith("process_service")) * 1000 / completed
    ceiling = cores * 1000 / machine_ms
    return [
        info(NAME, f"{task}: CPU per image, whole machine", machine_ms, "ms"),
        info(NAME, f"{task}: CPU per image, process_service", process_ms, "ms"),
        info(NAME, f"{task}: ceiling of {cores} cores", ceiling, "img/s"),
        info(NAME, f"{task}: 1 process_service / ceiling", run["images_per_s"] / ceiling, "x"),
    ]


def run(suite=None, count=None, tasks=None, out=print):
    """Without a `suite`, each configuration gets a fresh one (a stuck process cannot spoil the next)."""
    print_machine(out)
    results, extra = [], {}
    out(f"other load on the machine before the run: {others_cpu_load():.2f} cores busy")
    for task in tasks or TASKS:
        operations = TASKS[task]
        runs = []
        for processes in (1, 2):
            own = suite is None
            current = suite or Suite(out=out).start()
            started = None
            try:
                if processes == 2:
                    started = current.start_process_service(EXTRA_PORT)
                runs.append(asyncio.run(measure(current, processes, operations, count or COUNTS[task], out)))
            finally:
                if started is not None:
                    started.stop()
                    current.extra.remove(started)
                if own:
                    current.stop()
        extra[task] = runs
        out(f"\n-- throughput {task}: {count or COUNTS[task]} images at concurrency {CONCURRENCY}, 4000x3000 JPEG, {operations}")
        rows = []
        for r in runs:
            cpu = r["cpu"]
            proc_cpu = sum(v or 0 for k, v in cpu.items() if k.startswith("process_service"))
            nginx_cpu = sum(v or 0 for k, v in cpu.items() if k.startswith("nginx"))
            rows.append([
                f"{r['processes']} process_service", r["completed"], r["seconds"], r["images_per_s"],
                proc_cpu / r["wall"], (cpu.get("upload_service") or 0) / r["wall"],
                (cpu.get("notification_service") or 0) / r["wall"] + (cpu.get("user_service") or 0) / r["wall"],
                nginx_cpu / r["wall"], (cpu.get("bench client") or 0) / r["wall"], r["machine_busy"] * 2,
            ])
            for failure in r["failures"][:5]:
                out(f"   failure: {failure}")
        print_stats_table(rows, ["config", "images", "seconds", "images/s", "process cores", "upload cores",
                                 "notif+user cores", "nginx cores", "client cores", "machine cores busy"], out=out)
        one, two = runs
        results.append(info(NAME, f"{task}: 1 process_service", one["images_per_s"], "img/s"))
        results.append(info(NAME, f"{task}: 2 process_service", two["images_per_s"], "img/s"))
        ratio = two["images_per_s"] / one["images_per_s"] if one["images_per_s"] else float("nan")
        # No target any more: one process already fills this 2-core machine, so the ratio says
        # nothing about scaling; bench.scaleout measures that with a CPU quota per instance.
        results.append(info(NAME, f"{task}: 2 processes vs 1", ratio, "x", note="scaling: see bench.scaleout"))
        results.extend(machine_ceiling(task, one))
        lost = sum(len(r["failures"]) for r in runs)
        if lost:
            results.append(check(NAME, f"{task}: failed or stuck images", lost, "", "<=", 0, shown_limit="0",
                                 note="; ".join(sorted({f for r in runs for f in r["failures"]}))[:300]))
    print_table(results, "throughput", out)
    save_results(NAME, results, extra)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="measured images per configuration (default 100 / 40)")
    parser.add_argument("--task", choices=list(TASKS), action="append")
    args = parser.parse_args(argv)
    results = run(count=args.images, tasks=args.task)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
