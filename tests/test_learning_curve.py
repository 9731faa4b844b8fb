"""The loss-curve judge behind the `loss_curve_falls` checks: smoothed ends, falling vs flat, rising, noisy."""

import math

import numpy as np
import pytest

from vf3d.common.learning_curve import MIN_RELATIVE_DROP, judge_curve, window_size


def test_window_is_a_tenth_of_the_steps_at_least_one():
    assert [window_size(n) for n in (1, 4, 9, 10, 30, 400)] == [1, 1, 1, 1, 3, 40]


def test_a_falling_curve_passes_and_records_its_smoothed_ends():
    losses = list(2.0 * np.exp(-np.arange(100) / 30) + 0.5)
    verdict = judge_curve(losses)
    assert verdict.falls and verdict.window == 10 and verdict.steps == 100
    assert verdict.first_loss == pytest.approx(np.mean(losses[:10]))
    assert verdict.last_loss == pytest.approx(np.mean(losses[-10:]))
    assert verdict.relative_drop == pytest.approx(1 - verdict.last_loss / verdict.first_loss)
    assert "falls" in verdict.describe()


def test_flat_and_rising_curves_fail():
    flat, rising = judge_curve([1.0] * 50), judge_curve(list(np.linspace(1.0, 1.5, 50)))
    assert not flat.falls and flat.relative_drop == 0 and "flat" in flat.describe()
    assert not rising.falls and rising.relative_drop < 0 and "rises" in rising.describe()


def test_a_drop_below_the_margin_is_flat():
    barely = list(np.linspace(1.0, 1.0 - MIN_RELATIVE_DROP / 2, 100))
    assert not judge_curve(barely).falls
    assert judge_curve(barely, min_relative_drop=0.01).falls


def test_noise_is_smoothed_out():
    rng = np.random.default_rng(0)
    noisy_falling = np.linspace(1.0, 0.6, 200) + rng.normal(0, 0.3, 200)  # noise far above the trend per step
    assert judge_curve(list(noisy_falling)).falls
    noisy_flat = 1.0 + rng.normal(0, 0.05, 200)
    top, bottom = int(noisy_flat.argmax()), int(noisy_flat.argmin())
    noisy_flat[[0, top]], noisy_flat[[-1, bottom]] = noisy_flat[[top, 0]], noisy_flat[[bottom, -1]]
    assert noisy_flat[-1] < 0.85 * noisy_flat[0]  # the raw ends alone would say the loss fell by more than 15%
    verdict = judge_curve(list(noisy_flat))
    assert not verdict.falls and abs(verdict.relative_drop) < MIN_RELATIVE_DROP


def test_one_step_is_flat_empty_is_an_error_and_nan_never_falls():
    assert not judge_curve([0.7]).falls
    with pytest.raises(ValueError, match="empty"):
        judge_curve([])
    broken = judge_curve([2.0] * 20 + [float("nan")] + [0.5] * 20)
    assert not broken.falls and math.isnan(broken.relative_drop) and "non-finite" in broken.describe()


def assert_loss_curve_recorded(metadata, checks) -> bool:
    """A trained asset's materialization records its curve (first_loss, last_loss, the plot) and its
    `loss_curve_falls` check (severity WARN) judges exactly those ends. Returns whether the check passed."""
    from dagster import AssetCheckSeverity

    check = checks["loss_curve_falls"]
    first, last = metadata["first_loss"].value, metadata["last_loss"].value
    assert isinstance(first, float) and isinstance(last, float) and math.isfinite(first) and math.isfinite(last)
    assert "data:image/png;base64," in metadata["loss_curve"].value
    assert check.severity == AssetCheckSeverity.WARN
    recorded = {k: v.value for k, v in check.metadata.items()}
    assert (recorded["first_loss"], recorded["last_loss"]) == (first, last)
    assert recorded["relative_drop"] == pytest.approx((first - last) / first)
    assert check.passed == (last <= (1 - recorded["min_relative_drop"]) * first)
    print(f"\n{check.asset_key.to_user_string()} loss_curve_falls passed={check.passed}: {check.description}")
    return check.passed
