"""Which path reads a window (``drift_athena``: off, auto, on), and why: the reason goes in the report.

Under ``auto`` the window is read from S3 (the Lambda path) while that fits the read budget, and through
Athena when it does not:

- before reading: the objects the S3 read would fetch (the hours no stored hour sample covers, listed as the
  read lists them, with their sizes: ``window_reader.estimate_read``) at the measured costs below; the
  listing stops as soon as the estimate passes the budget, so a window far too large costs one pass of LISTs.
- after reading: an S3 read cut short by the budget anyway (``partial``) is followed by Athena, in the share of
  the budget kept for it (``AUTO_ATHENA_SHARE``).

The costs: ``GET_SECONDS``, one S3 GET's latency from Lambda (about 20 ms for a small object; the readers run
``ReadOptions.workers`` at once), and ``DECODE_SECONDS_PER_BYTE``, gunzip + JSON parse + routing of one
byte of gzip JSON Lines (``python benchmarks/bench_read_estimate.py``: 241-275 ns a byte on this machine,
10-23 µs a row; rounded up).
"""

from __future__ import annotations

from dataclasses import dataclass

from .window_reader import ReadEstimate

GET_SECONDS = 0.020
DECODE_SECONDS_PER_BYTE = 300e-9
# under auto, the share of the read budget kept for Athena when the S3 read is cut short (the S3 read has the rest)
AUTO_ATHENA_SHARE = 0.25


def read_seconds(objects: int, size: int, workers: int) -> float:
    """Estimated seconds to fetch and decode ``objects`` objects of ``size`` bytes in all, ``workers`` GETs at once."""
    return objects * GET_SECONDS / max(1, workers) + size * DECODE_SECONDS_PER_BYTE


@dataclass(frozen=True)
class ReadChoice:
    """``athena``: read the window through Athena; ``reason``: why, as the report says it."""

    athena: bool
    reason: str


def choose_by_estimate(estimate: ReadEstimate, s3_budget_s: float, workers: int) -> ReadChoice:
    """``auto`` before reading: Athena when the S3 read would not fit ``s3_budget_s``."""
    seconds = read_seconds(estimate.objects, estimate.bytes, workers)
    listed = (
        f"{estimate.objects:,} objects ({estimate.bytes / 1e6:,.1f} MB){'' if estimate.complete else ' listed before stopping'} "
        f"in {estimate.live_slices} hours without a stored sample"
    )
    if not estimate.complete or seconds > s3_budget_s:
        return ReadChoice(True, f"drift_athena=auto: the S3 read would take over {s3_budget_s:,.0f} s, its budget: {listed}")
    return ReadChoice(False, f"drift_athena=auto: the S3 read fits its budget (about {seconds:,.1f} s of {s3_budget_s:,.0f} s: {listed})")
