"""Time procedural body synthesis on one core: ``python -m training.sources.body_benchmark``.

Prints the median and 90th percentile milliseconds per body over ``--n`` bodies
(seeds 0..n-1, regions drawn), with OpenCV limited to one thread so the figure is per
core, as DataLoader workers use it. Both wall-clock time and the process's CPU time are
given: on a shared machine the CPU time is the figure that does not depend on the load.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from training.sources.procedural_bodies import generate_body


def time_bodies(n: int, width: int, height: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) taken by each of ``n`` bodies, after one warm-up body."""
    generate_body(np.random.default_rng(10_000), width=width, height=height)
    wall, cpu = [], []
    for seed in range(n):
        start, start_cpu = time.perf_counter(), time.process_time()
        generate_body(np.random.default_rng(seed), width=width, height=height)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    wall, cpu = (np.array(t) * 1000.0 for t in time_bodies(args.n, args.width, args.height))
    print(f"{args.n} bodies at {args.width}x{args.height}, one thread:")
    for name, times in (("wall", wall), ("cpu", cpu)):
        print(
            f"  {name}: median {np.median(times):.1f} ms, p90 {np.percentile(times, 90):.1f} ms,"
            f" mean {times.mean():.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
