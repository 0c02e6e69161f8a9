"""A CPU quota for a group of processes (the kernel's CFS bandwidth control), as a container's CPU
limit holds them: `with CpuQuota("bench-process-1", 0.25) as group: group.add(pid)`.

cgroup v2 (`cpu.max` in a child of /sys/fs/cgroup, the `cpu` controller enabled for children) or
v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us` under /sys/fs/cgroup/cpu). Needs root. On exit the
processes go back to the root group and the group is removed.
"""
import contextlib
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def available():
    """None when quotas can be set here, else why not."""
    if (ROOT / "cgroup.controllers").exists():
        if "cpu" not in (ROOT / "cgroup.controllers").read_text().split():
            return "cgroup v2 without the cpu controller"
        return None
    if (ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        return None
    return "no cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 cpu.max)"


class CpuQuota:
    def __init__(self, name, cores):
        self.cores = cores
        self.v2 = (ROOT / "cgroup.controllers").exists()
        self.parent = ROOT if self.v2 else ROOT / "cpu"
        self.path = self.parent / name

    def __enter__(self):
        self.path.mkdir(exist_ok=True)
        quota = int(self.cores * PERIOD_US)
        if self.v2:
            subtree = ROOT / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        return self

    def add(self, pid):
        """Moves the process (every thread, and those it starts later) into the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled_seconds(self):
        """How long the kernel held the group back for its quota so far."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        if self.v2:
            return int(stat.get("throttled_usec", 0)) / 1e6
        return int(stat.get("throttled_time", 0)) / 1e9

    def __exit__(self, *exc):
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self.parent / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            self.path.rmdir()
