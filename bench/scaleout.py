"""Scale-out: throughput with N instances of a service, each held to a quarter of a core.

    .venv/bin/python -m bench.scaleout [--quota 0.25]

On a 2-core machine, one process_service already fills the machine, so "two processes are faster
than one" says nothing about scaling. Here each instance is held to QUOTA of a core by a cgroup CPU
quota (bench/cgroups.py: CFS bandwidth control, as a container's CPU limit), so that the instances,
not the machine, are the bottleneck, as they are when each runs on a host of its own:

1. process_service, N = 1, 2, 4 (the suite's own plus N-1 started as the Procfile starts it),
   a CPU-heavy pipeline (a 2000x1500 JPEG: blur 6, sharpen, resize 1400, WebP, ~0.3 s of CPU) so
   that the instances are the bottleneck; 2 x N warm-up images, then 12 x N at concurrency 2 x N
   through the gateway (upload, long-poll to `completed`); throughput = images / (first upload ->
   last completion). The work and the concurrency per instance are the same for every N, so each
   run lasts about as long and its ramp-up and last stragglers weigh the same on each.
   Efficiency = throughput(N) / (N x throughput(1)); target >= 0.9 at N = 4.
2. upload_service, N = 1, 2 (each held to 0.15 core, see UPLOAD_QUOTA) behind the gateway (UPLOAD_SERVICE_ADDR lists both: nginx spreads the
   uploads), an upload-bound load: 1.3 MP JPEG uploads (validated by a decode in upload_service)
   with a trivial pipeline, 3 x 10 warm-up then 80 x N measured at concurrency 3 x N; throughput =
   202 answers per second. Target: efficiency >= 0.9 at N = 2.

Each configuration gets a fresh suite (bench.suite). Every other process (nginx, user_service,
RabbitMQ, PostgreSQL, ...) is left unlimited and must not be the bottleneck: the CPU each used per
image is printed, with the time the kernel held each limited group back (its quota at work).
"""
import argparse
import asyncio
import contextlib
import sys
import time

from bench import cgroups, client, images
from bench.common import check, info, print_machine, print_stats_table, print_table, save_results
from bench.suite import SERVICE_PORTS, Suite, suite_env
from bench.throughput import run_images

NAME = "scaleout"
QUOTA = 0.25
# upload_service's own share: at 0.25 core two instances took the uploads faster than the rest of the
# suite (gateway, token checks, the pipeline, emails, the client) could follow on 2 cores, which
# then was the bottleneck, not them (their quota went unused: less throttling at N = 2 than at 1).
UPLOAD_QUOTA = 0.15
EFFICIENCY_TARGET = 0.9
EXTRA_PORTS = [18121, 18122, 18123]
HEAVY = [{"type": "blur", "radius": 6}, {"type": "sharpen"}, {"type": "resize", "width": 1400},
         {"type": "convert", "format": "webp"}]
LIGHT = [{"type": "resize", "width": 64}]


def heavy_photo():
    return images.input_file(2000, 1500, "jpeg", 90, seed=4).read_bytes()


def upload_photo():
    return images.input_file(1400, 933, "jpeg", 85, seed=5).read_bytes()


def limited(stack, service, pids, quota):
    """Each instance of `service` in a CPU quota group of its own, left when `stack` closes (a
    group that fails to start leaves those already made to the stack)."""
    groups = []
    for index, pid in enumerate(pids):
        group = stack.enter_context(cgroups.CpuQuota(f"imageproc-bench-{service}-{index}", quota))
        group.add(pid)
        groups.append(group)
    return groups


def throttled(groups):
    return sum(group.throttled_seconds() for group in groups)


def started_suite(service, instances, out):
    """A fresh suite with `instances` of `service` (the extras on EXTRA_PORTS), and their pids."""
    ports = [SERVICE_PORTS[service], *EXTRA_PORTS[:instances - 1]]
    extra_env = {}
    if service == "upload_service":
        extra_env["UPLOAD_SERVICE_ADDR"] = ",".join(f"127.0.0.1:{port}" for port in ports)
    suite = Suite(out=out, env=suite_env(**extra_env)).start()
    try:
        for port in ports[1:]:
            suite.start_extra(service, port)
    except BaseException:
        suite.stop()
        raise
    pids = [suite.pids[service], *(extra.pid for extra in suite.extra)]
    return suite, pids


def cpu_of(suite):
    from bench.common import cpu_seconds

    return {name: cpu_seconds(pid) or 0.0 for name, pid in suite.process_pids().items()}


async def process_run(suite, instances):
    data = heavy_photo()
    async with client.new_session() as session:
        token = (await client.make_user(session, suite.gateway))[0]
        await run_images(suite, session, token, data, HEAVY, 2 * instances, concurrency=4 * instances)
        before = cpu_of(suite)
        seconds, completed, failures = await run_images(suite, session, token, data, HEAVY, 12 * instances,
                                                        concurrency=2 * instances)
        after = cpu_of(suite)
    return {"seconds": seconds, "count": completed, "failures": failures,
            "cpu": {name: after.get(name, 0) - before.get(name, 0) for name in after}}


async def upload_run(suite, instances):
    data = upload_photo()
    count, concurrency = 80 * instances, 3 * instances
    async with client.new_session() as session:
        token = (await client.make_user(session, suite.gateway))[0]

        async def uploads(total):
            queue = list(range(total))
            answers = []

            async def worker():
                while queue:
                    queue.pop()
                    code, body, error, _, t_done = await client.upload(session, suite.gateway, token, data, LIGHT)
                    answers.append((code, t_done, body or error))

            started = time.time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return started, answers

        for _ in range(3):
            await uploads(10)
        before = cpu_of(suite)
        started, answers = await uploads(count)
        after = cpu_of(suite)
    accepted = [t for code, t, _ in answers if code == 202]
    failures = [f"{code}: {detail}" for code, _, detail in answers if code != 202]
    return {"seconds": max(accepted) - started if accepted else float("nan"), "count": len(accepted),
            "failures": failures, "cpu": {name: after.get(name, 0) - before.get(name, 0) for name in after}}


def measure(service, counts, measure_run, quota, out):
    runs = {}
    for instances in counts:
        suite, pids = started_suite(service, instances, out)
        try:
            with contextlib.ExitStack() as stack:
                groups = limited(stack, service, pids, quota)
                throttled_before = throttled(groups)
                run = asyncio.run(measure_run(suite, instances))
                run["throttled_s"] = throttled(groups) - throttled_before
        finally:
            suite.stop()
        run["per_s"] = run["count"] / run["seconds"]
        runs[instances] = run
        out(f"scaleout: {instances} x {service}: {run['count']} in {run['seconds']:.1f} s = {run['per_s']:.2f}/s; "
            f"quota throttling {run['throttled_s']:.1f} s; failures {run['failures'][:3]}")
    return runs


def report(service, runs, unit, quota, out):
    one = runs[1]["per_s"]
    rows = []
    for instances, run in runs.items():
        cpu_per_item = {name: seconds / max(run["count"], 1) * 1000 for name, seconds in run["cpu"].items()}
        busiest_other = max(((name, ms) for name, ms in cpu_per_item.items() if not name.startswith(service)),
                            key=lambda item: item[1])
        mine = sum(ms for name, ms in cpu_per_item.items() if name.startswith(service))
        rows.append([f"{instances} x {service}", run["count"], run["seconds"], run["per_s"],
                     run["per_s"] / (instances * one), mine, f"{busiest_other[0]} {busiest_other[1]:.0f}",
                     run["throttled_s"]])
    out(f"\n-- scale-out of {service}, each instance held to {quota} core")
    print_stats_table(rows, ["config", unit, "seconds", f"{unit}/s", "efficiency", f"{service} CPU ms per item",
                             "busiest other process (CPU ms per item)", "throttled s"], out=out)


def run(quota=QUOTA, upload_quota=UPLOAD_QUOTA, services=("process_service", "upload_service"), out=print):
    reason = cgroups.available()
    if reason:
        raise SystemExit(f"bench.scaleout needs CPU quotas: {reason} (run as root)")
    print_machine(out)
    plans = {"process_service": ((1, 2, 4), process_run, quota, "images"),
             "upload_service": ((1, 2), upload_run, upload_quota, "uploads")}
    measured = {}
    for service in services:
        counts, measure_run, service_quota, unit = plans[service]
        measured[service] = measure(service, counts, measure_run, service_quota, out)
    for service, runs in measured.items():
        report(service, runs, plans[service][3], plans[service][2], out)
    results = []
    for service, runs in measured.items():
        largest, quota = max(runs), plans[service][2]
        one = runs[1]["per_s"]
        for instances, run in runs.items():
            results.append(info(NAME, f"{service} x {instances}: per second", run["per_s"],
                                "img/s" if service == "process_service" else "uploads/s"))
        efficiency = runs[largest]["per_s"] / (largest * one)
        results.append(check(NAME, f"{service}: efficiency at N = {largest} (each {quota} core)", efficiency, "",
                             ">=", EFFICIENCY_TARGET,
                             note=f"{runs[largest]['per_s']:.2f} vs {largest} x {one:.2f}"))
        failures = sum(len(run["failures"]) for run in runs.values())
        if failures:
            results.append(check(NAME, f"{service}: failed items", failures, "", "<=", 0, shown_limit="0"))
    print_table(results, "scaleout", out)
    save_results(NAME, results, measured)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quota", type=float, default=QUOTA, help="cores per process_service instance")
    parser.add_argument("--upload-quota", type=float, default=UPLOAD_QUOTA, help="cores per upload_service instance")
    parser.add_argument("services", nargs="*", default=["process_service", "upload_service"])
    args = parser.parse_args(argv)
    results = run(quota=args.quota, upload_quota=args.upload_quota, services=args.services)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
