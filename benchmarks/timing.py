"""Wall-clock helpers shared by the benchmarks."""

import time
from collections.abc import Callable


def timed(work: Callable[[], object]) -> float:
    """Wall time of one call of `work()`."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """The fastest of `repeats` timed calls: the least disturbed by other load."""
    return min(timed(work) for _ in range(repeats))
