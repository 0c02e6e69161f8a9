"""Runs every benchmark and prints every figure, then one table with all of them.

    .venv/bin/python -m bench                      # all (about 10-15 minutes on 2 cores)
    .venv/bin/python -m bench processing latency   # some

Each benchmark that needs the services starts its own fresh private suite (bench.suite) and stops
it, so a failure in one (e.g. a process_service that deadlocked) cannot spoil the next. Results are
also written as JSON to /tmp/imageproc-bench/results/. Exit status 1 when any target is missed.
"""
import argparse
import sys
import time

from bench import (
    burst, delivery, event_loop, latency, longpoll, processing, scaleout, storage, suite_cpu, throughput, variants,
)
from bench.common import print_machine, print_table, save_results

BENCHMARKS = {
    "processing": processing.run,
    "latency": latency.run,
    "throughput": throughput.run,
    "longpoll": longpoll.run,
    "burst": burst.run,
    "event_loop": event_loop.run,
    "storage": storage.run,
    "delivery": delivery.run,
    "variants": variants.run,
    "scaleout": scaleout.run,
    "suite_cpu": suite_cpu.run,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description="imageproc performance benchmarks")
    parser.add_argument("names", nargs="*", metavar="name",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    started = time.monotonic()
    results = []
    for name in names:
        print(f"\n######## {name} ########", flush=True)
        t0 = time.monotonic()
        try:
            results.extend(BENCHMARKS[name]())
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            import traceback

            traceback.print_exc()
            from bench.common import Result

            results.append(Result(name, "benchmark crashed", float("nan"), "", "runs", False, f"{exc}"[:200]))
        print(f"({name}: {time.monotonic() - t0:.0f}s)", flush=True)
    print("\n######## all figures ########")
    print_machine()
    print_table(results, f"all benchmarks ({time.monotonic() - started:.0f}s)")
    save_results("all", results)
    failed = [r for r in results if r.passed is False]
    print(f"\n{len(results)} figures, {sum(r.passed is True for r in results)} PASS, {len(failed)} FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
