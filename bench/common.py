"""What every benchmark shares: statistics, the results table, machine facts, CPU and RSS sampling.

A benchmark returns a list of `Result`s; each is one printed figure, with its target (when the issue
sets one) and PASS/FAIL. Figures that only explain another one have no target (`info`).
"""
import datetime as dt
import json
import math
import os
import platform
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = Path(os.environ.get("BENCH_WORK_DIR", "/tmp/imageproc-bench"))
RESULTS_DIR = WORK_DIR / "results"


@dataclass
class Result:
    benchmark: str
    figure: str
    value: float
    unit: str = ""
    target: str = ""  # e.g. "<= 1.00x"; empty: information only
    passed: object = None  # True, False, or None (no target)
    note: str = ""

    @property
    def verdict(self):
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")


def check(benchmark, figure, value, unit, op, limit, note="", shown_limit=None):
    """A Result whose verdict compares `value` with `limit` by `op` ("<=" or ">=")."""
    passed = value <= limit if op == "<=" else value >= limit
    if value is None or (isinstance(value, float) and math.isnan(value)):
        passed = False
    shown = shown_limit if shown_limit is not None else f"{_fmt(limit)}{unit if unit in ('x', '%') else ''}"
    return Result(benchmark, figure, value, unit, f"{op} {shown}", passed, note)


def info(benchmark, figure, value, unit="", note=""):
    return Result(benchmark, figure, value, unit, "", None, note)


# -- statistics -------------------------------------------------------------------------------------


def percentile(values, pct):
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    values = sorted(values)
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    rank = (len(values) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def median(values):
    return statistics.median(values) if values else float("nan")


def summary_ms(values_s):
    """{n, median, p95, p99, max} in milliseconds of durations given in seconds."""
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "median": median(ms),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else float("nan"),
    }


# -- printing ---------------------------------------------------------------------------------------


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def print_table(results, title=None, out=print):
    if title:
        out(f"\n== {title} ==")
    rows = [("benchmark", "figure", "value", "target", "verdict")]
    for r in results:
        value = f"{_fmt(r.value)} {r.unit}".strip()
        rows.append((r.benchmark, r.figure, value, r.target or "-", r.verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for index, row in enumerate(rows):
        out("  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)))
        if index == 0:
            out("  ".join("-" * w for w in widths))
    notes = [r for r in results if r.note]
    for r in notes:
        out(f"  note [{r.benchmark}: {r.figure}]: {r.note}")


def print_stats_table(rows, headers, out=print):
    """A plain table of already formatted cells."""
    table = [headers] + [[_fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for index, row in enumerate(table):
        out("  ".join(cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            out("  ".join("-" * w for w in widths))


def save_results(name, results, extra=None):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"machine": machine_info(), "results": [asdict(r) for r in results], "extra": extra or {}}
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def all_passed(results):
    return all(r.passed is not False for r in results)


# -- the machine ------------------------------------------------------------------------------------


def machine_info():
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "commit": commit,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def print_machine(out=print):
    m = machine_info()
    out(
        f"machine: {m['cpus']} cores ({m['cpu_model']}), kernel {m['kernel']}, Python {m['python']}; "
        f"{m['date']}; commit {m['commit']}; load average {m['loadavg'][0]:.2f} {m['loadavg'][1]:.2f} {m['loadavg'][2]:.2f}"
    )


# -- /proc sampling ---------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of one process so far (None when it is gone)."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields_[11]) + int(fields_[12])) / _CLK_TCK


def rss_bytes(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def total_cpu_seconds():
    """(busy, total) jiffies-as-seconds of the whole machine, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


class Sampler:
    """Samples RSS and CPU of named processes every `interval` seconds in a thread; keeps the peak
    RSS and notices processes that disappear."""

    def __init__(self, processes, interval=0.1):
        self.processes = dict(processes)  # name -> pid
        self.interval = interval
        self.peak_rss = {name: 0 for name in self.processes}
        self.gone = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.cpu_start = {}
        self.cpu_end = {}
        self.machine_start = None
        self.machine_end = None
        self.wall = 0.0

    def __enter__(self):
        self.cpu_start = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        self.machine_start = total_cpu_seconds()
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.wall = time.monotonic() - self._t0
        self.cpu_end = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        self.machine_end = total_cpu_seconds()
        self._sample()

    def _sample(self):
        for name, pid in self.processes.items():
            rss = rss_bytes(pid)
            if rss is None:
                self.gone.add(name)
            else:
                self.peak_rss[name] = max(self.peak_rss[name], rss)

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def cpu_used(self, name):
        start, end = self.cpu_start.get(name), self.cpu_end.get(name)
        return None if start is None or end is None else end - start

    def machine_busy_fraction(self):
        busy = self.machine_end[0] - self.machine_start[0]
        total = self.machine_end[1] - self.machine_start[1]
        return busy / total if total else float("nan")


def others_cpu_load(own_pids=(), seconds=1.0):
    """How many cores other processes keep busy right now (machine busy time minus ours), so a run
    on a shared machine says how noisy it was."""
    own_pids = set(own_pids) | {os.getpid()}
    own0 = sum(cpu_seconds(p) or 0 for p in own_pids)
    busy0, total0 = total_cpu_seconds()
    time.sleep(seconds)
    own1 = sum(cpu_seconds(p) or 0 for p in own_pids)
    busy1, total1 = total_cpu_seconds()
    cores = os.cpu_count() or 1
    busy = (busy1 - busy0) - (own1 - own0)
    return max(0.0, busy / ((total1 - total0) / cores))


def fmt_bytes(n):
    return f"{n / 2**20:.0f} MiB"


@dataclass
class Timer:
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self):
        return time.perf_counter() - self.started
