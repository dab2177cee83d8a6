"""Latency: a histogram kept as plain integers, cheap enough for the capture path; /metrics reads it."""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in seconds: a group commit takes about a millisecond, an fsync or a large message far more.
BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Latency:
    """Counts per bucket (not cumulative) plus the sum; written on one loop, read at scrape time.

    A reader on another thread may see a count one observation ahead of the sum: Prometheus
    tolerates that (its own client makes no stronger promise)."""

    def __init__(self, bounds: tuple[float, ...] = BOUNDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' buckets: (le, observations at or below it), ending with +Inf."""
        out, total = [], 0
        for bound, count in zip((*(repr(b) for b in self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out
