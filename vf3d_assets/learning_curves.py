"""A trained asset's loss curve in Dagster: its ends as metadata and the `loss_curve_falls` check (WARN), judged by
`vf3d.common.learning_curve`. Used by `style_lora` and `ggi_weights`."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from vf3d.common.learning_curve import MIN_RELATIVE_DROP, WINDOW_FRACTION, judge_curve


def loss_curve_check_spec(asset_name: str) -> AssetCheckSpec:
    """The `loss_curve_falls` check of a trained asset (WARN: a flat or rising curve shows as a warning in the UI
    without failing the run). Dagster wants every declared check's result on every materialization: an imported
    asset, which has no curve, reports `imported_curve_check()`."""
    return AssetCheckSpec("loss_curve_falls", asset=asset_name, blocking=False,
                          description=f"The training loss curve falls: the mean loss of the last {WINDOW_FRACTION:.0%} "
                                      f"of steps is at least {MIN_RELATIVE_DROP:.0%} below that of the first "
                                      f"{WINDOW_FRACTION:.0%} (vf3d.common.learning_curve). Warns on a flat or "
                                      "rising curve.")


def loss_curve_record(losses: list[float]) -> tuple[dict, AssetCheckResult]:
    """A training curve's `first_loss` and `last_loss` (each the mean of 10% of the steps, at least one) for the
    asset's metadata, and its `loss_curve_falls` check result (severity WARN)."""
    verdict = judge_curve(losses)
    check = AssetCheckResult(check_name="loss_curve_falls", passed=verdict.falls, severity=AssetCheckSeverity.WARN,
                             description=verdict.describe(),
                             metadata={"first_loss": verdict.first_loss, "last_loss": verdict.last_loss,
                                       "relative_drop": verdict.relative_drop,
                                       "min_relative_drop": verdict.min_relative_drop,
                                       "window_steps": verdict.window, "steps": verdict.steps})
    return {"first_loss": verdict.first_loss, "last_loss": verdict.last_loss}, check


def imported_curve_check() -> AssetCheckResult:
    """`loss_curve_falls` of imported weights: passed, with nothing to judge (no training ran here)."""
    return AssetCheckResult(check_name="loss_curve_falls", passed=True, severity=AssetCheckSeverity.WARN,
                            description="imported, not trained here: no loss curve to judge",
                            metadata={"trained": False})
