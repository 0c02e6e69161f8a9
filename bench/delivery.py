"""Delivery: signed media URLs against nginx serving the same file from a plain static location.

    .venv/bin/python -m bench.delivery [--rounds N] [--seconds S]

One ~100 kB output (the 4000x3000 JPEG of bench.latency, `resize 1000x750` + `compress 75`) is
made through the suite, then fetched by wrk (`-t2 -c50 --latency`) from three URLs of the same
gateway, each answering with the same file:

- static: `/_bench_static/<object>`, a plain `location` with `alias` to the storage's outputs
  folder. The product's nginx.conf has no such location, so this benchmark renders its suite's
  gateway from a copy of the template with that one location added (NGINX_TEMPLATE, which
  scripts/render-nginx-conf reads). Same nginx, same workers, sendfile, keepalive, access log and
  server-level headers: the only difference between the two sides is what a signed URL adds
  (njs HMAC check, regex location, rewrite, its own headers).
- signed: the output's signed URL (`GET /api/images/<id>/url?ttl=...`), verified by njs.
- download: `GET /api/images/<id>/download` with the Bearer token (upload_service authorizes,
  nginx streams the file after X-Accel-Redirect); for the record, no target.

Each URL is first fetched once with a plain client (200, Content-Length and body equal to the file).
A warm-up per side, then N rounds of S seconds per side, the order rotating between rounds so that
drift (other work on the machine) hits every side alike. Medians over the rounds; targets: signed
req/s >= 0.8x static, signed p99 <= 1.5x static. Any non-2xx answer or socket error wrk reports
stops the benchmark. CPU of the nginx workers, of the services and of wrk itself is read from /proc
around every run, per request, to explain a gap.
"""
import argparse
import asyncio
import os
import re
import resource
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench import client, images
from bench.common import (
    REPO_ROOT, WORK_DIR, Sampler, check, info, median, others_cpu_load, print_machine, print_stats_table,
    print_table, save_results,
)
from bench.suite import STORAGE_DIR, Suite, suite_env

NAME = "delivery"
OPERATIONS = [{"type": "resize", "width": 1000, "height": 750}, {"type": "compress", "quality": 75}]
CONCURRENCY = 50
WRK_THREADS = 2
# wrk counts an answer slower than this as a socket error (which stops the benchmark). Its default,
# 2 s, is within reach of the authenticated download (Python, c=50) on a shared 2-core machine:
# p99 2.3 s and a maximum of 4.9 s were seen at load average 7.
WRK_TIMEOUT = "10s"
ROUNDS = 3
ROUND_SECONDS = 10
WARMUP_SECONDS = 3
SIGNED_URL_TTL = 2 * 3600  # far beyond the run (a few minutes), so no request meets an expired link
RPS_TARGET = 0.8
P99_TARGET = 1.5
SIDES = ("static", "signed", "download")
STATIC_PREFIX = "/_bench_static/"

# Added to the bench suite's copy of the gateway template only: everything a plain static site
# has (alias, sendfile, keepalive and the access log from the http block), nothing of /media/.
STATIC_LOCATION = f"""\
        # bench.delivery's reference (bench/delivery.py): the outputs folder as a plain static site.
        location {STATIC_PREFIX} {{
            alias ${{STORAGE_DIR}}/outputs/;
            types {{
                image/jpeg jpg jpeg;
            }}
        }}

"""
LOCATION_ANCHOR = "        location / {\n"


# -- the suite and its gateway ------------------------------------------------------------------------


def template_with_static_location():
    """A copy of nginx.conf with STATIC_LOCATION before the catch-all `location /`; its path."""
    template = (REPO_ROOT / "nginx.conf").read_text()
    if template.count(LOCATION_ANCHOR) != 1:
        raise RuntimeError(f"nginx.conf: expected one {LOCATION_ANCHOR.strip()!r} to add the static location before")
    path = WORK_DIR / "nginx-delivery.conf"
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(template.replace(LOCATION_ANCHOR, STATIC_LOCATION + LOCATION_ANCHOR))
    return path


def delivery_suite(out):
    return Suite(out=out, env=suite_env(NGINX_TEMPLATE=template_with_static_location()))


def ensure_wrk(out):
    """wrk on PATH; installed from Debian's package when missing and this process is root."""
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise RuntimeError("wrk is not installed: `sudo apt-get install -y wrk` (bench/README.md, bench.delivery)")
    out("delivery: wrk is missing; installing Debian's package: apt-get install -y wrk")
    # Another apt run may hold the dpkg lock for a while: wait for it rather than fail.
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "wrk"], check=True,
                   stdout=subprocess.DEVNULL, timeout=600)


# -- the output and its three URLs ----------------------------------------------------------------------


@dataclass
class Target:
    side: str
    url: str
    headers: dict


async def make_output(gateway):
    """Uploads the input and waits for its output; returns (token, image id, signed URL path)."""
    data = images.latency_photo().read_bytes()
    async with client.new_session() as session:
        token, _, _ = await client.make_user(session, gateway)
        image_id, *_ = await client.completed_image(session, gateway, token, data, OPERATIONS)
        async with session.get(f"{gateway}/api/images/{image_id}/url", params={"ttl": str(SIGNED_URL_TTL)},
                               headers=client.auth(token)) as response:
            minted = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(f"GET /url answered {response.status}: {minted}")
    return token, image_id, minted["url"]


def stored_file(signed_path):
    """The output file a signed URL names: /media/<object>/<name>?... -> <storage>/outputs/<object>."""
    media_object = urlsplit(signed_path).path.split("/")[2]
    return Path(STORAGE_DIR) / "outputs" / media_object


def targets_for(gateway, token, image_id, signed_path):
    media_object = stored_file(signed_path).name
    return [
        Target("static", f"{gateway}{STATIC_PREFIX}{media_object}", {}),
        Target("signed", f"{gateway}{signed_path}", {}),
        Target("download", f"{gateway}/api/images/{image_id}/download", client.auth(token)),
    ]


def verify(target, expected):
    """One plain GET: 200, Content-Length and body equal to the stored file, or an error."""
    request = urllib.request.Request(target.url, headers=target.headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        length = response.headers.get("Content-Length")
        if response.status != 200 or length != str(len(expected)) or body != expected:
            raise RuntimeError(f"{target.side} {target.url}: {response.status}, Content-Length {length}, "
                               f"{len(body)} bytes (file: {len(expected)}), body equal: {body == expected}")
        return response.headers.get("Content-Type")


# -- wrk ------------------------------------------------------------------------------------------------

_LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()
    return float(number) * _LATENCY_UNITS_MS[unit]


def parse_wrk(output):
    """{requests, requests_per_s, mean_ms, p50_ms, p99_ms, non_2xx, socket_errors} from `wrk --latency` output."""
    def found(pattern):
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"wrk output without {pattern!r}:\n{output}")
        return match

    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)  # printed only when there are some
    return {
        "requests": int(found(r"^\s*(\d+) requests in")[1]),
        "requests_per_s": float(found(r"^Requests/sec:\s+([\d.]+)")[1]),
        "mean_ms": _ms(found(r"^\s+Latency\s+(\S+)")[1]),
        "p50_ms": _ms(found(r"^\s+50%\s+(\S+)")[1]),
        "p99_ms": _ms(found(r"^\s+99%\s+(\S+)")[1]),
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    }


def run_wrk(target, seconds):
    """wrk's figures for `seconds` of load on `target`, plus wrk's own CPU seconds."""
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{CONCURRENCY}", f"-d{seconds}s", "--timeout", WRK_TIMEOUT, "--latency"]
    for name, value in target.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(target.url)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child that ends meanwhile
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk on {target.side} exited {completed.returncode}: {completed.stderr or completed.stdout}")
    figures = parse_wrk(completed.stdout)
    if figures["non_2xx"] or figures["socket_errors"]:
        raise RuntimeError(f"wrk on {target.side}: {figures['non_2xx']} non-2xx answers, "
                           f"{figures['socket_errors']} socket errors; a delivery benchmark must see none:\n"
                           f"{completed.stdout}")
    figures["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return figures


# -- the measurement --------------------------------------------------------------------------------


@dataclass
class Run:
    side: str
    round: int
    requests: int
    requests_per_s: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    nginx_cpu_s: float  # master and workers
    services_cpu_s: float  # the four services (only the download side should use them)
    wrk_cpu_s: float
    machine_busy: float  # fraction of both cores, everything on the machine

    def per_request_us(self, cpu_s):
        return cpu_s / self.requests * 1e6 if self.requests else float("nan")

    def implied_in_flight(self):
        """req/s x mean latency (Little's law): at most CONCURRENCY when wrk's latencies are right."""
        return self.requests_per_s * self.mean_ms / 1000


def measured_run(suite, target, seconds, round_number):
    pids = suite.process_pids()
    with Sampler(pids, interval=1.0) as sampler:
        figures = run_wrk(target, seconds)
    cpu_of = lambda prefix: sum(sampler.cpu_used(name) or 0.0 for name in pids if name.startswith(prefix))  # noqa: E731
    return Run(
        side=target.side, round=round_number, requests=figures["requests"],
        requests_per_s=figures["requests_per_s"], mean_ms=figures["mean_ms"], p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        nginx_cpu_s=cpu_of("nginx"), services_cpu_s=sum(cpu_of(name) for name in pids if name.endswith("_service")),
        wrk_cpu_s=figures["wrk_cpu_s"], machine_busy=sampler.machine_busy_fraction(),
    )


def rotated(sides, round_number):
    """Each round starts with the next side, so no side always runs first (or last)."""
    shift = round_number % len(sides)
    return sides[shift:] + sides[:shift]


def measure(suite, targets, rounds, seconds, out):
    for target in targets:
        out(f"delivery: warm-up {target.side} ({WARMUP_SECONDS} s)")
        run_wrk(target, WARMUP_SECONDS)
    runs = []
    for round_number in range(1, rounds + 1):
        for target in rotated(targets, round_number - 1):
            run = measured_run(suite, target, seconds, round_number)
            out(f"delivery: round {round_number} {run.side:8} {run.requests_per_s:8.0f} req/s  "
                f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  load {os.getloadavg()[0]:.2f}")
            runs.append(run)
    return runs


# -- figures ------------------------------------------------------------------------------------------


def side_medians(runs, side):
    mine = [r for r in runs if r.side == side]
    return {
        "requests_per_s": median([r.requests_per_s for r in mine]),
        "p50_ms": median([r.p50_ms for r in mine]),
        "p99_ms": median([r.p99_ms for r in mine]),
        "implied_in_flight": median([r.implied_in_flight() for r in mine]),
        "nginx_us_per_request": median([r.per_request_us(r.nginx_cpu_s) for r in mine]),
        "services_us_per_request": median([r.per_request_us(r.services_cpu_s) for r in mine]),
        "wrk_us_per_request": median([r.per_request_us(r.wrk_cpu_s) for r in mine]),
        "machine_busy": median([r.machine_busy for r in mine]),
    }


def print_runs(runs, out):
    rows = [
        [str(r.round), r.side, r.requests_per_s, r.p50_ms, r.p99_ms, r.implied_in_flight(), r.per_request_us(r.nginx_cpu_s),
         r.per_request_us(r.services_cpu_s), r.per_request_us(r.wrk_cpu_s), f"{r.machine_busy:.0%}"]
        for r in runs
    ]
    print_stats_table(rows, ["round", "side", "req/s", "p50 ms", "p99 ms", "req/s x mean", "nginx CPU us/req",
                             "services CPU us/req", "wrk CPU us/req", "machine busy"], out=out)


def delivery_results(medians, output_bytes, machine):
    """The verdicts and the figures behind them; `machine`: how busy other work kept it."""
    static, signed, download = (medians[side] for side in SIDES)
    rps_ratio = signed["requests_per_s"] / static["requests_per_s"]
    p99_ratio = signed["p99_ms"] / static["p99_ms"]
    return [
        check(NAME, "signed URL / static req/s, c=50", rps_ratio, "x", ">=", RPS_TARGET),
        check(NAME, "signed URL / static p99, c=50", p99_ratio, "x", "<=", P99_TARGET),
        info(NAME, "static req/s (median)", static["requests_per_s"], "req/s"),
        info(NAME, "static p99 (median)", static["p99_ms"], "ms"),
        info(NAME, "signed URL req/s (median)", signed["requests_per_s"], "req/s"),
        info(NAME, "signed URL p99 (median)", signed["p99_ms"], "ms"),
        info(NAME, "nginx CPU per request, static", static["nginx_us_per_request"], "us"),
        info(NAME, "nginx CPU per request, signed URL", signed["nginx_us_per_request"], "us"),
        info(NAME, "download (Bearer) req/s (median)", download["requests_per_s"], "req/s"),
        info(NAME, "download (Bearer) p99 (median)", download["p99_ms"], "ms"),
        info(NAME, "download / static req/s", download["requests_per_s"] / static["requests_per_s"], "x"),
        info(NAME, "download / static p99", download["p99_ms"] / static["p99_ms"], "x"),
        info(NAME, "download CPU per request, nginx + services", download["nginx_us_per_request"]
             + download["services_us_per_request"], "us"),
        info(NAME, "output size", output_bytes, "bytes"),
        info(NAME, "cores kept busy by other processes, before the load", machine["others_cores"], "cores"),
        info(NAME, "load average (1 min) at the end", machine["load_after"], "",
             note=f"{machine['load_before']:.2f} when the load started"),
    ]


def run(rounds=ROUNDS, seconds=ROUND_SECONDS, out=print):
    print_machine(out)
    ensure_wrk(out)
    suite = delivery_suite(out).start()
    try:
        token, image_id, signed_path = asyncio.run(make_output(suite.gateway))
        expected = stored_file(signed_path).read_bytes()
        targets = targets_for(suite.gateway, token, image_id, signed_path)
        for target in targets:
            content_type = verify(target, expected)
            out(f"delivery: {target.side:8} {target.url}: 200, {len(expected)} bytes, {content_type}, body equal")
        # A shared machine: say how much of it other work took, next to the figures.
        machine = {"others_cores": others_cpu_load(suite.process_pids().values()), "load_before": os.getloadavg()[0]}
        out(f"delivery: output {len(expected)} bytes ({OPERATIONS}); others keep "
            f"{machine['others_cores']:.2f} cores busy before the load")
        runs = measure(suite, targets, rounds, seconds, out)
        machine["load_after"] = os.getloadavg()[0]
    finally:
        suite.stop()
    out(f"\n-- delivery: wrk -t{WRK_THREADS} -c{CONCURRENCY}, {rounds} rounds x {seconds} s per side "
        f"(after {WARMUP_SECONDS} s of warm-up each), order rotating; same gateway, same {len(expected)}-byte file")
    print_runs(runs, out)
    medians = {side: side_medians(runs, side) for side in SIDES}
    results = delivery_results(medians, len(expected), machine)
    print_table(results, "delivery", out)
    save_results(NAME, results, {"runs": [asdict(r) for r in runs], "medians": medians, "operations": OPERATIONS,
                                 "machine": machine})
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=int, default=ROUND_SECONDS)
    args = parser.parse_args(argv)
    results = run(rounds=args.rounds, seconds=args.seconds)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
