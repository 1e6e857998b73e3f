"""Wall-clock helpers shared by the benchmarks."""

import statistics
import time
from collections.abc import Callable


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """The fastest of `repeats` timed calls: the least disturbed by other load."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def median_step(steps: int, step: Callable[[], object]) -> float:
    """Median wall time of `step()` over `steps` calls, after one warm-up call."""
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
