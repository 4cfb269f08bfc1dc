"""Start-up time of the frozen app against the app run from source, in the same run.

Each launch runs ``lesionviewer --startup-probe`` (see lesionviewer/startup_probe.py), which
prints the moment its event loop is first idle with the main window shown; the time from
just before the launch to that moment is the launch-to-interactive time. Launches alternate
between the two programs (one unmeasured warm-up each, so both read from a warm disk cache),
and the medians and their ratio are printed.

    python packaging/startup_time.py --frozen dist/lesionviewer/lesionviewer [--runs 5]

On Linux Qt runs offscreen unless DISPLAY is set (then on that X server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "startup-probe: ready_at="


def launch_seconds(command: list[str], env: dict[str, str], timeout: float = 180.0) -> float:
    """Seconds from just before starting ``command`` to the probe's ready time."""
    start = time.time()
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    for line in done.stdout.splitlines():
        if line.startswith(PREFIX):
            return float(line[len(PREFIX) :].split()[0]) - start
    raise RuntimeError(
        f"{command[0]} printed no ready time (exit {done.returncode}): "
        f"{(done.stdout + done.stderr).strip()[-400:]}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frozen", required=True, help="the frozen lesionviewer executable")
    parser.add_argument("--runs", type=int, default=5, help="measured launches of each")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if sys.platform.startswith("linux") and not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    programs = {
        "frozen": [str(Path(args.frozen).resolve()), "--startup-probe"],
        "source": [sys.executable, "-m", "lesionviewer.cli", "--startup-probe"],
    }
    times: dict[str, list[float]] = {name: [] for name in programs}
    try:
        for command in programs.values():
            launch_seconds(command, env)  # warm-up: disk cache, Python bytecode
        for _ in range(args.runs):
            for name, command in programs.items():
                times[name].append(launch_seconds(command, env))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"startup_time: {exc}", file=sys.stderr)
        return 1
    platform = env.get("QT_QPA_PLATFORM") or "xcb"
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"startup: {name:6s} median {medians[name]:.2f} s  ({runs}; Qt {platform})")
    ratio = medians["frozen"] / medians["source"]
    print(f"startup: frozen / source = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
