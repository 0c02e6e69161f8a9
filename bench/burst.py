"""Bursts: 1,000 uploads at once through nginx.

    .venv/bin/python -m bench.burst [--uploads N]

1,000 concurrent `POST /api/images/upload` (a 640x480 photo-like JPEG, `resize 320`), one
connection each, all started together (aiohttp). Every answer is classified: 202 accepted; a
refusal with the JSON error envelope (4xx, 503, 507); anything else is a failure: a 500, a 502/504
from nginx (the service did not answer), a body that is not the envelope, or a dropped connection.
Then every accepted image is long-polled until it is `completed` or `failed` (deadline 150 s after
the burst): none may be lost. The RSS of every service process and of nginx is sampled every
100 ms from /proc during the whole run (peak reported); a process that disappears counts as a
failure (e.g. killed by the OOM killer).
"""
import argparse
import asyncio
import collections
import sys
import time

from bench import client, images
from bench.common import Sampler, check, fmt_bytes, info, print_machine, print_stats_table, print_table, save_results, summary_ms
from bench.suite import Suite

NAME = "burst"
OPERATIONS = [{"type": "resize", "width": 320}]
COMPLETION_DEADLINE_S = 150
REFUSAL_STATUSES = set(range(400, 500)) | {503, 507}


def classify(code, body, error):
    if code is None:
        return "dropped connection", error
    if code == 202:
        return "accepted", None
    envelope = isinstance(body, dict) and isinstance(body.get("error"), dict) and "code" in body["error"]
    if code in REFUSAL_STATUSES and envelope:
        return f"refused {code} {body['error']['code']}", None
    return f"failure {code}" + (f" {body['error']['code']}" if envelope else " (no JSON envelope)"), error or body


def listen_counters():
    """The kernel's ListenOverflows and ListenDrops (machine-wide; /proc/net/netstat): connections a
    listening socket's accept queue had no room for."""
    lines = [line.split() for line in open("/proc/net/netstat").read().splitlines() if line.startswith("TcpExt:")]
    values = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:])))
    return values.get("ListenOverflows", 0), values.get("ListenDrops", 0)


async def measure(suite, count, out):
    data = images.small_photo().read_bytes()
    async with client.new_session(limit=0, timeout=300) as session:
        token, _, _ = await client.make_user(session, suite.gateway)
        with Sampler(suite.process_pids(), interval=0.1) as sampler:
            t0 = time.time()
            answers = await asyncio.gather(*(
                client.upload(session, suite.gateway, token, data, OPERATIONS) for _ in range(count)))
            t_burst = time.time()
            accepted = [body["image"]["id"] for code, body, *_ in answers if code == 202]
            out(f"   {count} uploads answered in {t_burst - t0:.1f}s; {len(accepted)} accepted; "
                f"waiting for them to finish")

            async def final(image_id):
                try:
                    body, t_seen = await client.wait_final(session, suite.gateway, token, image_id, wait=60,
                                                           deadline_s=COMPLETION_DEADLINE_S - (time.time() - t_burst))
                    return image_id, body.get("status"), t_seen
                except Exception as exc:  # noqa: BLE001
                    return image_id, f"poll error {type(exc).__name__}: {exc}"[:120], None

            finals = await asyncio.gather(*(final(i) for i in accepted))
            t_done = time.time()
    return {"answers": answers, "finals": finals, "sampler": sampler, "t0": t0, "t_burst": t_burst, "t_done": t_done}


def run(suite=None, count=1000, out=print):
    print_machine(out)
    own = suite is None
    suite = suite or Suite(out=out).start()
    try:
        overflows_before = listen_counters()
        data = asyncio.run(measure(suite, count, out))
        overflows_after = listen_counters()
        import urllib.request

        try:
            with urllib.request.urlopen(f"{suite.gateway}/healthz", timeout=15) as response:
                health_after = response.status
        except Exception as exc:  # noqa: BLE001
            health_after = getattr(exc, "code", type(exc).__name__)
    finally:
        if own:
            suite.stop()
    classes = collections.Counter()
    examples = {}
    latencies = []
    for code, body, error, t_sent, t_answer in data["answers"]:
        kind, detail = classify(code, body, error)
        classes[kind] += 1
        examples.setdefault(kind, detail)
        latencies.append(t_answer - t_sent)
    finals = collections.Counter(status for _, status, _ in data["finals"])
    completion_times = [t - data["t0"] for _, status, t in data["finals"] if t is not None]
    sampler = data["sampler"]
    accepted = classes.get("accepted", 0)
    refused = sum(v for k, v in classes.items() if k.startswith("refused"))
    failures = sum(v for k, v in classes.items() if k.startswith("failure") or k == "dropped connection")
    out(f"\n-- burst: {count} concurrent uploads of a 640x480 JPEG, {OPERATIONS}")
    rows = [[kind, n, str(examples.get(kind) or "")[:90]] for kind, n in classes.most_common()]
    print_stats_table(rows, ["answer", "count", "example"], out=out)
    s = summary_ms(latencies)
    out(f"   upload answer time: median {s['median']:.0f} ms, p95 {s['p95']:.0f} ms, max {s['max']:.0f} ms")
    out(f"   accepted images by final status: {dict(finals)}; last one seen "
        f"{max(completion_times) if completion_times else float('nan'):.1f}s after the burst started")
    rss_rows = [[name, fmt_bytes(peak), "gone!" if name in sampler.gone else "alive"]
                for name, peak in sorted(sampler.peak_rss.items())]
    print_stats_table(rss_rows, ["process", "peak RSS", "at the end"], out=out)
    out(f"   gateway /healthz after the burst: {health_after}")
    overflow = [after - before for before, after in zip(overflows_before, overflows_after)]
    out(f"   kernel listen-queue overflows / drops during the run (whole machine): {overflow[0]} / {overflow[1]}")
    results = [
        info(NAME, "accepted (202)", accepted),
        info(NAME, "refused with a JSON error", refused),
        check(NAME, "dropped connections, 500s, 502/504 or non-JSON errors", failures, "", "<=", 0, shown_limit="0",
              note="; ".join(f"{k}: {v}" for k, v in classes.items() if k.startswith("failure") or k == "dropped connection")),
        check(NAME, "accepted images not completed", accepted - finals.get("completed", 0), "", "<=", 0,
              shown_limit="0", note=f"final statuses: {dict(finals)}"),
        check(NAME, "service processes gone (OOM or crash)", len(sampler.gone), "", "<=", 0, shown_limit="0",
              note=", ".join(sorted(sampler.gone))),
        info(NAME, "time until every accepted image was final", max(completion_times) if completion_times else float("nan"), "s"),
    ]
    for name in ("user_service", "upload_service", "process_service", "notification_service"):
        results.append(info(NAME, f"peak RSS {name}", sampler.peak_rss.get(name, 0) / 2**20, "MiB"))
    nginx_peak = sum(v for k, v in sampler.peak_rss.items() if k.startswith("nginx"))
    results.append(info(NAME, "peak RSS nginx (master + workers, summed peaks)", nginx_peak / 2**20, "MiB"))
    results.append(info(NAME, "kernel listen-queue overflows during the run", overflow[0]))
    print_table(results, "burst", out)
    save_results(NAME, results, {"listen_overflows": overflow, "answers": dict(classes), "finals": dict(finals),
                                 "peak_rss": sampler.peak_rss, "health_after": health_after})
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=1000)
    args = parser.parse_args(argv)
    results = run(count=args.uploads)
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
