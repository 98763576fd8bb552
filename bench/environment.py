"""What every benchmark reports: where it ran (versions, device, threads, how busy the machine was) and its goals."""
from __future__ import annotations

import os

import numpy as np
import torch

import memlib


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def describe(device: torch.device, load0: float | None, load: float | None, advice: str) -> dict:
    """Versions, device, threads and load before/after, with a warning when the machine was busy."""
    busy = load is not None and load0 is not None and max(load0, load) > 0.75 * (os.cpu_count() or 1)
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "memlib": memlib.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": {"before": None if load0 is None else round(load0, 2),
                              "after": None if load is None else round(load, 2)},
        "warning": (f"the machine was busy (1-minute load average {max(load0, load):.1f} on {os.cpu_count()} CPUs): "
                    f"timings are noisy; {advice}, or rerun on an idle machine") if busy else None,
    }


def goal(measured: float, target: float) -> dict:
    """A goal as the benchmarks report it: target, measured (3 decimals), met, and how far short when not met."""
    return {"target": target, "measured": round(measured, 3), "met": measured >= target,
            "short_by": None if measured >= target else round(target - measured, 3)}


def goal_at_most(measured: float, limit: float) -> dict:
    """A goal met when the measured figure is at most the limit (e.g. an overhead); over_by when it is missed."""
    return {"limit": limit, "measured": round(measured, 3), "met": measured <= limit,
            "short_by": None if measured <= limit else round(measured - limit, 3)}


def goal_state(g: dict) -> str:
    """'PASS', or 'short by x' for a goal that was missed."""
    return "PASS" if g["met"] else f"short by {g['short_by']:.3f}"


def warning_lines(r: dict) -> list[str]:
    """The closing lines of a benchmark's table: the busy-machine warning, if any."""
    return ["", "warning: " + r["warning"]] if r["warning"] else []
