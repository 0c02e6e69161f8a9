"""Storage: the object store (`s3://`, the bundled SeaweedFS) against the folder store (`file://`).

    .venv/bin/python -m bench.storage [--images N] [--big-rounds N]

Two private suites run side by side, identical but for STORAGE_URL: the default one (ports
18180/18101-18104, file://) and a second one (ports 18280/18201-18204, vhost `bench_s3`, database
`imageproc_bench_s3`, Redis db 10) on `s3://imageproc-tests/bench` of a SeaweedFS the benchmark
starts (tests/support/seaweedfs.py: scripts/seaweedfs, SigV4 identities, free ports).

1. Latency: the 4000x3000 JPEG of bench.latency with `resize 800x600` + `compress 80`, at
   concurrency 1 through each gateway; upload sent -> `completed` seen by a `?wait=60` long-poll.
   Warm-ups, then N rounds; each round uploads to both suites one after the other, the order
   alternating between rounds, so drift (other load, cache state) hits both equally. Target:
   median(s3) <= 1.25x median(file). Hops from the services' logs and the CPU of every process
   (services of each suite, weed) are printed to show where any extra time goes.
2. Memory: a ~20 MB JPEG uploaded to each (alternating, a few rounds). upload_service's peak RSS is
   read from VmHWM in /proc/<pid>/status, reset before each upload by writing 5 to
   /proc/<pid>/clear_refs (the kernel's "reset peak RSS"); VmRSS is also sampled every 2 ms as a
   cross-check. Target: peak(s3) <= 1.2x peak(file) (the upload is streamed to the store, not
   held in memory).
"""
import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

from bench import client, images
from bench.common import (
    WORK_DIR, check, cpu_seconds, fmt_bytes, info, median, print_machine, print_stats_table, print_table,
    save_results, summary_ms,
)
from bench.suite import Suite, second_suite_env

NAME = "storage"
OPERATIONS = [{"type": "resize", "width": 800, "height": 600}, {"type": "compress", "quality": 80}]
BIG_OPERATIONS = [{"type": "resize", "width": 800}]
LATENCY_TARGET = 1.25
RSS_TARGET = 1.2
S3_REDIS_DB = 10
BIG_BYTES = 20 * 1000 * 1000


def big_jpeg():
    """A JPEG of about 20 MB (19.5-21 MB): the photo-like image with strong grain, q95."""
    from PIL import Image

    images.INPUTS_DIR.mkdir(parents=True, exist_ok=True)
    path = images.INPUTS_DIR / "big-20mb.jpg"
    if path.exists():
        return path
    import random

    rnd = random.Random(12)
    width, height = 5000, 3750
    base = images.photo(width, height, seed=12)
    noise = Image.frombytes("RGB", (width, height), rnd.randbytes(width * height * 3))
    low, high = 0.0, 1.0  # how much noise: bisected until the file weighs 19.5-21 MB
    for _ in range(12):
        alpha = (low + high) / 2
        Image.blend(base, noise, alpha).save(path.with_suffix(".part"), "JPEG", quality=95)
        size = path.with_suffix(".part").stat().st_size
        if 19.5e6 <= size <= 21e6:
            break
        low, high = (alpha, high) if size < 19.5e6 else (low, alpha)
    else:
        raise RuntimeError(f"no noise level gives a 20 MB JPEG (last: {size} bytes)")
    path.with_suffix(".part").replace(path)
    return path


# -- memory of one process ----------------------------------------------------------------------------


def _status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak(pid):
    """Resets VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """VmRSS of one pid every `interval` s in a thread; `peak` the highest seen."""

    def __init__(self, pid, interval=0.002):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, _status_kib(self.pid, "VmRSS") or 0)
            except OSError:
                return
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# -- the measurement ----------------------------------------------------------------------------------


async def one_image(session, gateway, token, data, operations):
    image_id, t_sent, t_accepted, t_seen = await client.completed_image(session, gateway, token, data, operations)
    return {"id": image_id, "t_sent": t_sent, "t_accepted": t_accepted, "t_seen": t_seen}


def cpu_snapshot(pids):
    return {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}


async def measure(suites, weed_pid, count, warmup, big_rounds, out):
    kinds = list(suites)
    data = images.latency_photo().read_bytes()
    big = big_jpeg().read_bytes()
    samples = {kind: [] for kind in kinds}
    memory = {kind: [] for kind in kinds}
    cpu = {}
    async with client.new_session() as session:
        tokens = {kind: (await client.make_user(session, suites[kind].gateway))[0] for kind in kinds}
        for index in range(warmup):
            for kind in kinds:
                await one_image(session, suites[kind].gateway, tokens[kind], data, OPERATIONS)

        # Memory first, on processes that have only seen the warm-ups.
        out(f"storage: {big_rounds} rounds of a {fmt_bytes(len(big))} upload to each store")
        for index in range(big_rounds):
            for kind in (kinds if index % 2 == 0 else kinds[::-1]):
                pid = suites[kind].pids["upload_service"]
                before = _status_kib(pid, "VmRSS")
                reset = reset_peak(pid)
                with RssSampler(pid) as sampler:
                    code, body, error, t_sent, t_accepted = await client.upload(
                        session, suites[kind].gateway, tokens[kind], big, BIG_OPERATIONS)
                    if code != 202:
                        raise RuntimeError(f"20 MB upload to {kind} answered {code}: {body or error}")
                    hwm = _status_kib(pid, "VmHWM") if reset else None
                final, _ = await client.wait_final(session, suites[kind].gateway, tokens[kind], body["image"]["id"])
                if final.get("status") != "completed":
                    raise RuntimeError(f"20 MB image on {kind} ended {final}")
                memory[kind].append({"rss_before": before, "hwm": hwm, "sampled_peak": sampler.peak,
                                     "upload_s": t_accepted - t_sent})

        out(f"storage: {count} rounds of one upload to each store (order alternating)")
        pids = {f"{kind} {name}": pid for kind in kinds for name, pid in suites[kind].pids.items()}
        pids["weed (SeaweedFS)"] = weed_pid
        cpu_before, wall_before = cpu_snapshot(pids), time.monotonic()
        for index in range(count):
            for kind in (kinds if index % 2 == 0 else kinds[::-1]):
                samples[kind].append(await one_image(session, suites[kind].gateway, tokens[kind], data, OPERATIONS))
                await asyncio.sleep(0.05)
        cpu_after = cpu_snapshot(pids)
        cpu = {name: cpu_after[name] - cpu_before[name] for name in pids}
        cpu["_wall"] = time.monotonic() - wall_before
    return samples, memory, cpu


def log_hops(suite, rows):
    """Per image: 202 -> 'image processed' (queue, claim, fetch, pipeline, store output, publish) and
    'image processed' -> client sees completed, from the suite's JSON logs."""
    import datetime as dt

    stamp = lambda r: dt.datetime.fromisoformat(r["timestamp"]).timestamp()  # noqa: E731
    processed = {r.get("image_id"): stamp(r) for r in suite.log_records() if r.get("message") == "image processed"}
    hops = {"upload sent -> 202": [], "202 -> 'image processed' log": [], "'image processed' -> completed seen": [],
            "upload sent -> completed seen": []}
    for row in rows:
        hops["upload sent -> 202"].append(row["t_accepted"] - row["t_sent"])
        hops["upload sent -> completed seen"].append(row["t_seen"] - row["t_sent"])
        if row["id"] in processed:
            hops["202 -> 'image processed' log"].append(processed[row["id"]] - row["t_accepted"])
            hops["'image processed' -> completed seen"].append(row["t_seen"] - processed[row["id"]])
    return hops


def run(count=40, warmup=5, big_rounds=4, out=print):
    from tests.support.seaweedfs import SeaweedFS

    print_machine(out)
    folder = WORK_DIR / f"seaweedfs-{time.strftime('%Y%m%d-%H%M%S')}"
    store = SeaweedFS(folder)
    suites = {}
    try:
        store.start()
        out(f"storage: SeaweedFS at {store.endpoint} (pid {store.process.pid}, data {folder})")
        suites["file"] = Suite(out=out).start()
        env, suite_folder = second_suite_env("s3", 100, S3_REDIS_DB, STORAGE_URL=store.url("bench"), **store.env())
        suites["s3"] = Suite(out=out, env=env, folder=suite_folder).start()
        samples, memory, cpu = asyncio.run(measure(suites, store.process.pid, count, warmup, big_rounds, out))
        time.sleep(0.5)  # the log readers catch up
        hops = {kind: log_hops(suites[kind], samples[kind]) for kind in suites}
    finally:
        for suite in suites.values():
            suite.stop()
        store.stop()

    out(f"\n-- storage: {count} images per store at concurrency 1 ({warmup} warm-ups), 4000x3000 JPEG, "
        f"{OPERATIONS}")
    table = []
    for name in hops["file"]:
        f, s = summary_ms(hops["file"][name]), summary_ms(hops["s3"][name])
        table.append([name, f["median"], s["median"], f["p95"], s["p95"],
                      s["median"] - f["median"]])
    print_stats_table(table, ["interval", "file median ms", "s3 median ms", "file p95", "s3 p95", "s3 - file ms"],
                      out=out)
    out(f"\n-- CPU seconds during the latency phase ({cpu['_wall']:.1f} s wall, {count} images per store)")
    cpu_rows = [[name, value, value / count * 1000] for name, value in sorted(cpu.items()) if name != "_wall"]
    print_stats_table(cpu_rows, ["process", "CPU s", "CPU ms per image"], out=out)

    out(f"\n-- upload_service memory, {fmt_bytes(len(big_jpeg().read_bytes()))} upload")
    mem_rows = []
    for kind in memory:
        for index, m in enumerate(memory[kind]):
            mem_rows.append([f"{kind} #{index + 1}", fmt_bytes(m["rss_before"]),
                             fmt_bytes(m["hwm"]) if m["hwm"] else "-", fmt_bytes(m["sampled_peak"]),
                             m["upload_s"] * 1000])
    print_stats_table(mem_rows, ["upload", "RSS before", "VmHWM (peak)", "sampled peak", "upload ms"], out=out)

    medians = {kind: median([r["t_seen"] - r["t_sent"] for r in samples[kind]]) for kind in samples}
    ratio = medians["s3"] / medians["file"]
    hwm_ok = all(m["hwm"] for kind in memory for m in memory[kind])
    peak = {kind: max((m["hwm"] if hwm_ok else m["sampled_peak"]) for m in memory[kind]) for kind in memory}
    sampled = {kind: max(m["sampled_peak"] for m in memory[kind]) for kind in memory}
    growth = {kind: max((m["hwm"] if hwm_ok else m["sampled_peak"]) - m["rss_before"] for m in memory[kind])
              for kind in memory}
    mib = 1024 * 1024
    results = [
        check(NAME, "upload -> completed, median s3:// / file://", ratio, "x", "<=", LATENCY_TARGET,
              note=f"{medians['s3'] * 1000:.0f} vs {medians['file'] * 1000:.0f} ms"),
        info(NAME, "upload -> completed, median file://", medians["file"] * 1000, "ms"),
        info(NAME, "upload -> completed, median s3://", medians["s3"] * 1000, "ms"),
        check(NAME, "20 MB upload, upload_service peak RSS s3:// / file://", peak["s3"] / peak["file"], "x", "<=",
              RSS_TARGET, note=f"{'VmHWM' if hwm_ok else 'sampled'}: {peak['s3'] / mib:.0f} vs "
                               f"{peak['file'] / mib:.0f} MiB"),
        info(NAME, "20 MB upload, upload_service peak RSS file://", peak["file"] / mib, "MiB"),
        info(NAME, "20 MB upload, upload_service peak RSS s3://", peak["s3"] / mib, "MiB"),
        info(NAME, "20 MB upload, sampled (2 ms) peak RSS s3:// / file://", sampled["s3"] / sampled["file"], "x"),
        info(NAME, "20 MB upload, peak growth over RSS before, file:// / s3://",
             growth["file"] / mib, "MiB", note=f"s3: {growth['s3'] / mib:.0f} MiB"),
        info(NAME, "weed CPU per s3 image", cpu["weed (SeaweedFS)"] / count * 1000, "ms"),
    ]
    print_table(results, "storage", out)
    save_results(NAME, results, {"samples": samples, "memory": memory, "cpu": cpu,
                                 "hops_ms": {k: {n: summary_ms(v) for n, v in h.items()} for k, h in hops.items()}})
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--big-rounds", type=int, default=4)
    args = parser.parse_args(argv)
    results = run(count=args.images, warmup=args.warmup, big_rounds=args.big_rounds)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
