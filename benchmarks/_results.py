"""What every benchmark script shares: the machine's name and writing its results."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from posekit.io import atomic_write_bytes, atomic_write_json

__all__ = ["cpu_name", "posekit_eval", "write_results"]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or what the platform module knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_results(out_dir: Path, stem: str, report: dict[str, Any], lines: list[str]) -> None:
    """``OUT/stem.json`` and ``OUT/stem.md`` (atomically), and the markdown on stdout."""
    text = "\n".join(lines) + "\n"
    atomic_write_json(out_dir / f"{stem}.json", report)
    atomic_write_bytes(out_dir / f"{stem}.md", text.encode())
    print(text, end="")


def posekit_eval(gt: Path, *args: str) -> dict[str, float]:
    """COCO stats from the real ``posekit eval --gt GT --json ARGS...`` command, run as a subprocess."""
    cmd = [sys.executable, "-m", "posekit", "eval", "--gt", str(gt), "--json", "--quiet", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    stats: dict[str, float] = json.loads(out)["stats"]
    return stats
