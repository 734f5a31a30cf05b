"""Where the CPU went during a load round: per-process CPU time (Linux /proc), grouped by role,
as microseconds per request. Explains a throughput figure on a shared 2-core machine, where the
load generator, PostgreSQL, the simulator and every serve process compete for the same cores."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

_HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Snapshot:
    ticks: dict[int, tuple[str, int]]  # pid → (role, utime+stime ticks)
    children_s: float  # CPU seconds of waited-for children (wrk, once it has exited)


def _role(cmdline: str, comm: str) -> str:
    if comm.startswith("postgres") or cmdline.startswith("postgres"):
        return "postgresql"
    if "bot.serve worker" in cmdline:
        return "serve_worker"
    if "bot.serve sender" in cmdline:
        return "serve_sender"
    if "bot.serve edge" in cmdline or "qianmian serve" in cmdline or "bin/qianmian serve" in cmdline:
        return "serve_edge"
    if "bare_server.py" in cmdline:
        return "bare"
    if "floor_server.py" in cmdline:
        return "floor"
    return "other"


def snapshot() -> Snapshot:
    ticks: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline") as f:
                cmdline = f.read().replace("\0", " ").strip()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        role = "bench" if int(entry) == os.getpid() else _role(cmdline, comm)
        ticks[int(entry)] = (role, int(fields[11]) + int(fields[12]))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Snapshot(ticks, usage.ru_utime + usage.ru_stime)


def us_per_request(before: Snapshot, after: Snapshot, requests: int, *, children_role: str = "wrk") -> dict[str, float]:
    """CPU microseconds per request by role between two snapshots (processes that started in
    between count from zero; waited-for children, i.e. the load generator, as `children_role`)."""
    seconds: dict[str, float] = {}
    for pid, (role, ticks) in after.ticks.items():
        spent = ticks - before.ticks.get(pid, (role, 0))[1]
        if spent > 0:
            seconds[role] = seconds.get(role, 0.0) + spent / _HZ
    seconds[children_role] = after.children_s - before.children_s
    if not requests:
        return {}
    return {role: round(s / requests * 1e6, 1) for role, s in sorted(seconds.items(), key=lambda kv: -kv[1]) if s > 0}
