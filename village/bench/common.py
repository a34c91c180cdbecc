"""What every benchmark reports: a figure, its target, and its ratio to a baseline measured
in the same process; plus timing helpers for a busy machine and the machine's description."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


@dataclass
class Figure:
    """One measured figure. `target` reads "<= 4" or ">= 1000" (None: no target); `ratio`
    is value / baseline (or baseline / value where `ratio_label` says so)."""

    section: str
    name: str
    value: float | None
    unit: str
    target: str | None = None
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    ratio_label: str = ""
    note: str = ""
    skipped: str = ""  # why it was not measured (then value is None)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        op, num = self.target.split()
        v = float(self.value)
        return v <= float(num) if op == "<=" else v >= float(num)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["met"] = self.met
        return d


def timed(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> dict[str, float]:
    """Wall and CPU (this thread) milliseconds of fn(): median, min, and p90 of wall.

    On a shared machine the wall-clock median includes time the process waited for a
    core; the thread's CPU time does not, so both are reported."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        c = time.thread_time()
        t = time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    wall.sort()
    return {"median_ms": statistics.median(wall), "min_ms": wall[0],
            "p90_ms": wall[min(len(wall) - 1, int(0.9 * len(wall)))],
            "cpu_median_ms": statistics.median(cpu), "repeat": repeat}


def load() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (`uptime`)."""
    return os.getloadavg()


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    """nproc, the CPU model, memory and the load when the suite started."""
    model = ""
    for line in _cmd(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    mem = ""
    for line in _cmd(["free", "-h"]).splitlines():
        if line.startswith("Mem:"):
            mem = line.split()[1]
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(), "memory": mem,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "load_at_start": [round(x, 2) for x in load()]}


def bench_module(name: str) -> Any:
    """Import a script from benchmarks/ (they are scripts, not a package)."""
    import importlib

    if not BENCHMARKS.is_dir():
        raise ImportError(f"{BENCHMARKS} not found (benchmarks/ ships with the source tree)")
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)
