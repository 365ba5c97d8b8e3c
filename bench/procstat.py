"""What a benchmark reads about processes: CPU time, memory, and a CPU quota.

CPU time is user + system from /proc/PID/stat (clock ticks), the figure an
access point's slower CPU scales; wall time on this shared machine depends
on what else runs.

CpuQuota confines processes to a share of one core with a cgroup v1
cpu.cfs_quota_us (an access-point-class CPU: an AP is 10 to 20 times slower
than this machine, so 5 % of a core is the low end).  Each group is named
uniquely (benchmark, pid, counter) and removed when done, its processes
moved back to the root group first.
"""

from __future__ import annotations

import itertools
import os
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CGROUP_CPU = "/sys/fs/cgroup/cpu"
PERIOD_US = 100_000
_counter = itertools.count()


def best_us(fn, count: int, repeat: int) -> float:
    """This process's CPU microseconds per item of fn() (which handles count
    items), the best of repeat runs (the one least disturbed on a shared
    machine)."""
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        runs.append(time.process_time() - start)
    return round(min(runs) / count * 1e6, 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class CpuQuota:
    """A cgroup v1 cpu group limited to `percent` of one core."""

    def __init__(self, percent: float, label: str = "bench"):
        if not os.path.isdir(CGROUP_CPU):
            raise RuntimeError(f"no cgroup v1 cpu controller at {CGROUP_CPU}")
        self.percent = percent
        self.path = os.path.join(CGROUP_CPU, f"sroamd-{label}-{os.getpid()}-{next(_counter)}")
        os.mkdir(self.path)
        try:
            self._write("cpu.cfs_period_us", PERIOD_US)
            self._write("cpu.cfs_quota_us", int(PERIOD_US * percent / 100))
        except OSError:
            os.rmdir(self.path)
            raise

    def _write(self, name: str, value) -> None:
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", pid)

    def throttled(self) -> dict:
        """cpu.stat: periods, throttled periods and time (ns)."""
        with open(os.path.join(self.path, "cpu.stat")) as f:
            return {k: int(v) for k, v in (line.split() for line in f)}

    def remove(self) -> None:
        if not os.path.isdir(self.path):
            return
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                pids = [line.strip() for line in f if line.strip()]
            for pid in pids:
                try:
                    with open(os.path.join(CGROUP_CPU, "cgroup.procs"), "w") as root:
                        root.write(pid)
                except OSError:
                    pass  # it exited meanwhile
        finally:
            os.rmdir(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
