"""Judging a training loss curve: its smoothed first and last loss, and whether it falls (issue 21).

Used by the `style_lora` and `ggi_weights` assets to record the curve's ends as metadata and to flag a flat or
rising curve in the UI (their `loss_curve_falls` check). No Dagster here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WINDOW_FRACTION = 0.1
"""Each end of the curve is the mean of this fraction of the steps (the first and the last 10%)."""
MIN_RELATIVE_DROP = 0.05
"""A curve falls when its last loss is at least 5% below its first: last <= (1 - 0.05) * first."""


def window_size(steps: int, fraction: float = WINDOW_FRACTION) -> int:
    """Steps averaged at each end: `fraction` of the steps rounded down, at least 1 (10 steps: 1; 400: 40)."""
    return max(1, int(steps * fraction))


@dataclass(frozen=True)
class CurveVerdict:
    first_loss: float
    """Mean loss of the first `window` steps."""
    last_loss: float
    """Mean loss of the last `window` steps."""
    window: int
    steps: int
    relative_drop: float
    """(first - last) / |first|: 0.3 = the loss fell by 30%; negative: it rose."""
    min_relative_drop: float
    falls: bool
    """relative_drop >= min_relative_drop (and the curve is finite)."""

    def describe(self) -> str:
        verdict = ("falls" if self.falls else "has a non-finite value" if math.isnan(self.relative_drop)
                   else "rises" if self.relative_drop < 0 else "is flat")
        return (f"the loss {verdict}: {self.first_loss:.4g} (mean of the first {self.window} of {self.steps} steps) -> "
                f"{self.last_loss:.4g} (mean of the last {self.window}), {100 * self.relative_drop:+.1f}% drop; "
                f"falling means a drop of at least {100 * self.min_relative_drop:.0f}%")


def judge_curve(losses: Sequence[float], min_relative_drop: float = MIN_RELATIVE_DROP,
                fraction: float = WINDOW_FRACTION) -> CurveVerdict:
    """Smooth each end of a loss curve (mean of its first and last `window_size` steps) and say whether it falls:
    the last loss at least `min_relative_drop` below the first. A curve of one step is flat by construction (both
    ends are that step); a curve with a non-finite loss never falls. Raises ValueError on an empty curve."""
    values = [float(v) for v in losses]
    if not values:
        raise ValueError("judge_curve: the loss curve is empty (no training steps were recorded)")
    window = window_size(len(values), fraction)
    first = sum(values[:window]) / window
    last = sum(values[-window:]) / window
    finite = all(math.isfinite(v) for v in values)
    drop = (first - last) / abs(first) if finite and first != 0 else (0.0 if finite else float("nan"))
    return CurveVerdict(first_loss=first, last_loss=last, window=window, steps=len(values), relative_drop=drop,
                        min_relative_drop=min_relative_drop, falls=finite and drop >= min_relative_drop)
