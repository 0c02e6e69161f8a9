"""Variants: one upload of a 24 MP JPEG with 4 variants against the same 4 as separate uploads, and
what `"format": "auto"` costs against a plain WebP output.

    .venv/bin/python -m bench.variants [--rounds N]

1. Suite CPU: a private suite beside any other (ports 18380/18301-18304, vhost `bench_variants`,
   database `imageproc_bench_variants`, Redis db 11, so it can run while the default benchmark suite
   is up). Each round, in alternating order: (a) one upload whose `variants` are thumbnail,
   preview (the presets), a 1600 px WebP and an 800 px `auto`; (b) the same four as four uploads
   sent at once. CPU of every process of the suite (services, nginx master and workers, from
   /proc/<pid>/stat) from just before the upload to 1 s after the last `completed` is seen (the
   "image ready" emails included), so both sides carry the same idle second. Target: (a) <= 0.6x
   (b), medians over the rounds. The 4-variant upload's upload -> `completed` latency is reported.
2. `auto` against WebP, in this process: the 24 MP JPEG resized to 800 and to 1600 px once, then
   each encoded N times as plain WebP (imaging/encoding.py) and as `auto` (imaging/negotiation.py:
   AVIF + WebP + JPEG), median CPU time each. Target: auto <= 2.5x WebP (what chose AVIF's speed).
"""
import argparse
import asyncio
import sys
import tempfile
import time

from bench import client, images
from bench.common import check, cpu_seconds, info, median, percentile, print_machine, print_table, save_results
from bench.suite import Suite, second_suite_env

NAME = "variants"
REDIS_DB = 11
VARIANTS = {
    "thumbnail": "thumbnail",
    "preview": "preview",
    "large": [{"type": "resize", "width": 1600}, {"type": "convert", "format": "webp"}],
    "card": [{"type": "resize", "width": 800}, {"type": "convert", "format": "auto"}],
}
CPU_TARGET = 0.6
AUTO_TARGET = 2.5
SETTLE_SECONDS = 1.0


def suite_cpu(suite):
    return sum(cpu_seconds(pid) or 0.0 for pid in suite.process_pids().values())


async def completed(session, suite, token, data, operations=None, variants=None):
    """Uploads once and long-polls to `completed`; returns (t_sent, t_seen)."""
    _, t_sent, _, t_seen = await client.completed_image(session, suite.gateway, token, data, operations, variants)
    return t_sent, t_seen


async def one_upload(session, suite, token, data):
    return [await completed(session, suite, token, data, variants=VARIANTS)]


async def four_uploads(session, suite, token, data):
    presets = (await presets_of(session, suite, token))
    jobs = [completed(session, suite, token, data, presets[v] if isinstance(v, str) else v) for v in VARIANTS.values()]
    return await asyncio.gather(*jobs)


async def presets_of(session, suite, token):
    async with session.get(f"{suite.gateway}/api/presets", headers=client.auth(token)) as response:
        return (await response.json())["presets"]


async def measured(kind, session, suite, token, data):
    """(suite CPU seconds, [(t_sent, t_seen)]) of one run of `kind`."""
    run = one_upload if kind == "one upload, 4 variants" else four_uploads
    cpu_before = suite_cpu(suite)
    times = await run(session, suite, token, data)
    await asyncio.sleep(SETTLE_SECONDS)
    return suite_cpu(suite) - cpu_before, times


async def measure_suite(suite, rounds, out):
    data = images.standard_photo().read_bytes()
    kinds = ["one upload, 4 variants", "4 uploads"]
    cpu = {kind: [] for kind in kinds}
    latency = {kind: [] for kind in kinds}
    async with client.new_session() as session:
        token = (await client.make_user(session, suite.gateway))[0]
        for kind in kinds:  # warm-up: imports, connections, caches
            await measured(kind, session, suite, token, data)
        for index in range(rounds):
            for kind in (kinds if index % 2 == 0 else kinds[::-1]):
                seconds, times = await measured(kind, session, suite, token, data)
                cpu[kind].append(seconds)
                latency[kind].append(max(seen for _, seen in times) - min(sent for sent, _ in times))
                out(f"variants: round {index + 1} {kind}: suite CPU {seconds * 1000:.0f} ms, "
                    f"all completed after {latency[kind][-1] * 1000:.0f} ms")
    return cpu, latency


def auto_against_webp(repeats=7):
    """{width: (median auto CPU s, median webp CPU s, {format: bytes})}."""
    from PIL import Image

    from imaging.encoding import encode
    from imaging.formats import FORMATS
    from imaging.negotiation import encode_auto

    figures = {}
    with Image.open(images.standard_photo()) as photo, tempfile.TemporaryDirectory() as folder:
        photo.load()
        for width in (800, 1600):
            resized = photo.resize((width, round(photo.height * width / photo.width)), Image.Resampling.LANCZOS)
            runs = {"auto": [], "webp": []}
            for _ in range(repeats):
                for kind in runs:
                    started = time.process_time()
                    if kind == "auto":
                        written = encode_auto(resized, None, None, f"{folder}/auto")
                    else:
                        encode(resized, FORMATS["webp"], None, None, f"{folder}/webp")
                    runs[kind].append(time.process_time() - started)
            sizes = {each["format"]: each["size_bytes"] for each in written["formats"]}
            figures[width] = (median(runs["auto"]), median(runs["webp"]), sizes)
    return figures


def run(rounds=5, out=print):
    print_machine(out)
    out("variants: auto against webp, in this process")
    encodes = auto_against_webp()
    env, folder = second_suite_env("variants", 200, REDIS_DB)
    suite = Suite(out=out, env=env, folder=folder)
    try:
        suite.start()
        cpu, latency = asyncio.run(measure_suite(suite, rounds, out))
    finally:
        suite.stop()

    one, four = median(cpu["one upload, 4 variants"]), median(cpu["4 uploads"])
    one_latency = latency["one upload, 4 variants"]
    results = [
        check(NAME, "suite CPU, one upload with 4 variants / 4 uploads", one / four, "x", "<=", CPU_TARGET,
              note=f"{one * 1000:.0f} vs {four * 1000:.0f} ms, medians of {rounds} rounds"),
        info(NAME, "one upload with 4 variants: upload -> completed, median", median(one_latency) * 1000, "ms",
             note=f"max {max(one_latency) * 1000:.0f} ms"),
        info(NAME, "4 uploads at once: first sent -> last completed, median", median(latency["4 uploads"]) * 1000, "ms"),
    ]
    for width, (auto_cpu, webp_cpu, sizes) in encodes.items():
        results.append(check(NAME, f"encode CPU, auto / webp, {width} px", auto_cpu / webp_cpu, "x", "<=", AUTO_TARGET,
                             note=f"{auto_cpu * 1000:.0f} vs {webp_cpu * 1000:.0f} ms; "
                                  + ", ".join(f"{name} {size / 1000:.0f} kB" for name, size in sizes.items())))
    print_table(results, "variants", out)
    save_results(NAME, results, {"cpu": cpu, "latency": latency,
                                 "latency_p95_ms": percentile(one_latency, 95) * 1000})
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    results = run(rounds=args.rounds)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
