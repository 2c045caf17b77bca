"""The timing loop shared by the genjax and PyTorch halves of the benchmark suite."""

from __future__ import annotations

import statistics
import time

# A timed window runs at least this many training steps and waits only for the last: the training loop's own rhythm,
# so that on an accelerator the benchmark times the steps, not a host-device round trip after each dispatch.
WINDOW_STEPS = 16


def timed(fn, min_seconds: float, min_repeats: int = 3, stat=statistics.median) -> tuple[float, int]:
  """`stat` (the median) of the wall times of fn(), which must block until its result is ready, over repeats that
  fill min_seconds; and the number of repeats."""
  times, start = [], time.perf_counter()
  while time.perf_counter() - start < min_seconds or len(times) < min_repeats:
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return stat(times), len(times)
