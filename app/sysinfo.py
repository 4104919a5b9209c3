"""What a measurement ran on: machine (CPU, cores, GPU and driver, OS) and library versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as reported by nvidia-smi (name, driver, memory); [] when there is none or no nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    query = "name,driver_version,memory.total"
    try:
        done = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    rows = [[part.strip() for part in line.split(",")] for line in done.stdout.splitlines() if line.strip()]
    return [dict(zip(("name", "driver", "memory"), row)) for row in rows if len(row) == 3]


def machine() -> dict:
    """CPU model, logical cores (all and usable by this process), GPUs, OS and Python."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "gpus": gpus(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def versions() -> dict[str, str | None]:
    """Versions of the packages that shape a measurement (None: not installed)."""
    out = {
        "roadsight": _version("roadsight"),
        "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
        "tensorrt": _version("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11"),
        "numpy": _version("numpy"),
        "opencv": _version("opencv-python", "opencv-python-headless", "opencv-contrib-python"),
    }
    if out["opencv"] is None:
        try:
            import cv2

            out["opencv"] = cv2.__version__
        except ImportError:
            pass
    try:
        import onnxruntime

        out["onnxruntime_providers"] = ",".join(onnxruntime.get_available_providers())
    except ImportError:
        pass
    return out


def describe_machine(info: dict) -> str:
    """One line: 'CPU (N cores) | GPU (driver D) | OS'."""
    gpu = "; ".join(f"{g['name']} (driver {g['driver']}, {g['memory']})" for g in info.get("gpus") or []) or "no NVIDIA GPU"
    cores = info.get("cores")
    usable = info.get("cores_usable")
    core_text = f"{cores} cores" if usable in (None, cores) else f"{usable}/{cores} cores usable"
    return f"{info.get('cpu')} ({core_text}) | {gpu} | {info.get('os')}"


def describe_versions(info: dict) -> str:
    """One line: 'onnxruntime 1.x, numpy 2.x, ...' for the installed packages."""
    return ", ".join(f"{k} {v}" for k, v in info.items() if v and k != "onnxruntime_providers")
