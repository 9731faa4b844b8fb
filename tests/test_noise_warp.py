"""Go-with-the-Flow noise warping: Gaussianity, exact transport, the reference twin, the latent readout."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from vf3d.common.warp import pixel_centres
from vf3d.ggi.noise_warp import (
    NOISE_WARP_PRESETS,
    NoiseWarpSettings,
    WarpState,
    compose_flows,
    latent_noise,
    mix_with_fresh,
    noise_stats,
    warp_noise_sequence,
    warp_noise_step,
    warp_noise_step_reference,
    warped_noise_for_segment,
)

torch.set_num_threads(1)


def rotation_flows(height: int, width: int, frames: int, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """f_i->i+1 of an image rotating about its centre; pixels rotating out of the image are invalid."""
    p = pixel_centres(height, width).astype(np.float64)
    centre = np.array([width / 2, height / 2])
    t = math.radians(degrees)
    rotation = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    landing = (p - centre) @ rotation.T + centre
    flow = (landing - p).astype(np.float32)
    valid = (landing[..., 0] >= 0) & (landing[..., 0] < width) & (landing[..., 1] >= 0) & (landing[..., 1] < height)
    return np.repeat(flow[None], frames, 0), np.repeat(valid[None], frames, 0)


def shift_flows(height: int, width: int, frames: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Constant pan by dx pixels per frame; the columns leaving the image are invalid."""
    flow = np.zeros((frames, height, width, 2), np.float32)
    flow[..., 0] = dx
    valid = np.ones((frames, height, width), bool)
    valid[..., width - dx:] = False
    return flow, valid


@pytest.fixture(scope="module")
def rotating():
    flows, valid = rotation_flows(256, 256, 20, 3.0)
    noise, weights = warp_noise_sequence(flows, valid, channels=4, generator=torch.Generator().manual_seed(0),
                                         return_weights=True)
    return flows, valid, noise, weights


def test_rotation_keeps_every_frame_standard_normal(rotating):
    _, _, noise, weights = rotating
    assert noise.shape == (21, 4, 256, 256) and weights.shape == (21, 256, 256)
    summary = noise_stats(noise)
    assert summary["frames"] == 21
    assert max(abs(m) for m in summary["mean"]) < 0.02, summary["mean"]
    assert max(abs(s - 1) for s in summary["std"]) < 0.02, summary["std"]
    assert (weights > 0).all()
    # Normality of a few thousand samples from late frames, and no correlation between channels.
    sample = noise[[10, 20], :, ::8, ::8].flatten().numpy()
    assert len(sample) > 4000
    assert stats.kstest(sample, "norm").pvalue > 0.01
    assert stats.normaltest(sample).pvalue > 0.01
    assert abs(np.corrcoef(noise[20, 0].flatten(), noise[20, 1].flatten())[0, 1]) < 0.02


def test_rotation_noise_follows_the_motion(rotating):
    flows, valid, noise, _ = rotating
    # Frame i+1 sampled where frame i's pixels land repeats most of frame i (a static field would not).
    p = pixel_centres(256, 256) + flows[5]
    cols, rows = np.floor(p[..., 0]).astype(int), np.floor(p[..., 1]).astype(int)
    inside = valid[5]
    landed = noise[6][:, rows[inside], cols[inside]]
    correlation = np.corrcoef(noise[5][:, inside].flatten(), landed.flatten())[0, 1]
    assert correlation > 0.95, correlation
    assert abs(np.corrcoef(noise[5].flatten(), noise[6].flatten())[0, 1]) < 0.1


def test_integer_shift_moves_the_noise_exactly():
    flows, valid = shift_flows(32, 40, 4, 3)
    noise = warp_noise_sequence(flows, valid, channels=3, generator=torch.Generator().manual_seed(1))
    for i in range(4):
        assert torch.equal(noise[i + 1][..., 3:], noise[i][..., :-3])
        # The uncovered columns get fresh noise.
        assert not torch.isclose(noise[i + 1][..., :3], noise[i][..., :3]).any()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("subpixel", [True, False])
def test_vectorised_step_matches_reference(seed, subpixel):
    g = torch.Generator().manual_seed(seed)
    h, w, c = 6, 5, 3
    state = WarpState(torch.randn(h, w, c, generator=g), torch.rand(h, w, generator=g) + 0.5,
                      torch.rand(h, w, 2, generator=g) - 0.5)
    flow = (torch.rand(h, w, 2, generator=g) - 0.5) * 4  # +-2 px: collisions, holes and pulls
    valid = torch.rand(h, w, generator=g) > 0.2
    randn = torch.randn(2, h, w, c, generator=g)
    fast = warp_noise_step(state, flow, valid, randn, subpixel)
    slow = warp_noise_step_reference(state, flow, valid, randn, subpixel)
    torch.testing.assert_close(fast.noise, slow.noise, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight, slow.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.offset, slow.offset, rtol=1e-5, atol=1e-5)


def test_expanded_copies_are_regaussianized_and_read_back_to_the_source():
    # Columns 3..6 pan right by 1 px, columns 0..2 stay: column 3 gets no particle and pulls from column 2.
    h, w, c = 2, 8, 2
    flow = torch.zeros(h, w, 2)
    flow[:, 3:, 0] = 1.0
    valid = torch.ones(h, w, dtype=torch.bool)
    valid[:, 7] = False  # lands outside the image
    g = torch.Generator().manual_seed(3)
    state = WarpState(torch.randn(h, w, c, generator=g), torch.ones(h, w), torch.zeros(h, w, 2))
    out = warp_noise_step(state, flow, valid, torch.randn(2, h, w, c, generator=g))
    assert torch.equal(out.noise[:, [0, 1, 4, 5, 6, 7]], state.noise[:, [0, 1, 3, 4, 5, 6]])
    # Column 2's two copies differ, yet read out together they give the source value back.
    assert not torch.isclose(out.noise[:, 2], out.noise[:, 3]).any()
    torch.testing.assert_close((out.noise[:, 2] + out.noise[:, 3]) / math.sqrt(2), state.noise[:, 2])
    torch.testing.assert_close(out.weight[:, [2, 3]], out.weight[:, [0, 1]] / 2)


def test_subpixel_mode_moves_noise_under_slow_flow():
    flows, valid = shift_flows(8, 40, 5, 1)
    flows *= 0.4  # 0.4 px per frame, everything stays inside
    valid[:] = True
    frozen = warp_noise_sequence(flows, valid, channels=2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(frozen[5], frozen[0])  # the reference's behaviour: under half a pixel never moves
    moving = warp_noise_sequence(flows, valid, channels=2, generator=torch.Generator().manual_seed(7),
                                 subpixel=True)
    torch.testing.assert_close(moving[5][..., 6:], moving[0][..., 4:-2])  # 5 x 0.4 = 2 px


def test_latent_readout_of_a_46_frame_segment():
    flows, valid = rotation_flows(128, 192, 45, 2.0)
    g = torch.Generator().manual_seed(4)
    noise, weights = warp_noise_sequence(flows, valid, channels=16, generator=g, return_weights=True)
    latent = latent_noise(noise, weights=weights)
    assert latent.shape == (13, 16, 16, 24)
    # Padding repeats the last frame: frame 48 of the padded sequence is frame 45.
    padded = torch.cat([noise, noise[-1:].expand(3, -1, -1, -1)])
    padded_weights = torch.cat([weights, weights[-1:].expand(3, -1, -1)])
    torch.testing.assert_close(latent, latent_noise(padded, weights=padded_weights))
    torch.testing.assert_close(latent[0], latent_noise(noise[:1], num_frames=1, weights=weights[:1])[0])
    # Latent frames share transported noise, so each frame (6144 independent values) is checked alone.
    summary = noise_stats(latent)
    assert max(abs(m) for m in summary["mean"]) < 0.05, summary["mean"]
    assert max(abs(s - 1) for s in summary["std"]) < 0.05, summary["std"]
    assert abs(float(latent.std()) - 1) < 0.02
    for frame in (6, 12):
        assert stats.kstest(latent[frame].flatten().numpy(), "norm").pvalue > 0.01
    mixed = mix_with_fresh(latent, 0.5, torch.Generator().manual_seed(5))
    assert abs(float(mixed.std()) - 1) < 0.02
    assert torch.equal(mix_with_fresh(latent, 0.0), latent)


def test_segment_noise_equals_the_composition():
    flows, valid = rotation_flows(32, 48, 9, 4.0)
    direct = warped_noise_for_segment(flows, valid, channels=2, num_frames=13,
                                      generator=torch.Generator().manual_seed(6),
                                      settings=NOISE_WARP_PRESETS["video_rate"])
    g = torch.Generator().manual_seed(6)
    noise, weights = warp_noise_sequence(flows, valid, channels=2, generator=g, return_weights=True)
    composed = mix_with_fresh(latent_noise(noise, num_frames=13, weights=weights), 0.5, g)
    assert direct.shape == (4, 2, 4, 6)
    torch.testing.assert_close(direct, composed)


def test_bad_inputs_name_the_argument():
    flows, valid = shift_flows(16, 16, 2, 1)
    with pytest.raises(ValueError, match="flows"):
        warp_noise_sequence(flows[..., :1], valid, 4)
    with pytest.raises(ValueError, match="valid"):
        warp_noise_sequence(flows, valid[:1], 4)
    with pytest.raises(ValueError, match="num_frames"):
        latent_noise(torch.zeros(3, 1, 16, 16), num_frames=48)
    with pytest.raises(ValueError, match="frames"):
        latent_noise(torch.zeros(50, 1, 16, 16))
    with pytest.raises(ValueError, match="spatial"):
        latent_noise(torch.zeros(3, 1, 12, 16))
    with pytest.raises(ValueError, match="degradation"):
        mix_with_fresh(torch.zeros(2), 1.5)


def _shifted_correlation(a: torch.Tensor, b: torch.Tensor, cells: int) -> float:
    """Correlation of b with a moved `cells` latent cells to the right (interior only)."""
    moved, still = (a[..., :-cells], b[..., cells:]) if cells else (a, b)
    return float(torch.corrcoef(torch.stack([moved.flatten(), still.flatten()]))[0, 1])


def test_official_settings_carry_sub_pixel_motion_that_video_rate_freezes():
    """0.25 px per frame to the right at 128x128: after 32 frames (8 warps of 4 frames) the content moved
    8 px = one latent cell, and so must the noise; warping every 0.25 px flow at video resolution rounds each
    step to no motion, so the noise stays where it was (what the official cadence and resolution avoid)."""
    h = w = 128
    flows = np.zeros((45, h, w, 2), np.float32)
    flows[..., 0] = 0.25
    valid = np.ones((45, h, w), bool)
    kwargs = dict(channels=4, degradation=0.0, num_frames=49)
    paper = warped_noise_for_segment(flows, valid, generator=torch.Generator().manual_seed(1), **kwargs)
    assert NOISE_WARP_PRESETS["paper"] == NoiseWarpSettings(resolution_scale=4, flow_stride=4, weighted_readout=False)
    assert paper.shape == (13, 4, 16, 16)
    assert _shifted_correlation(paper[0], paper[8], 1) > 0.9  # moved with the content
    assert abs(_shifted_correlation(paper[0], paper[8], 0)) < 0.2
    frozen = warped_noise_for_segment(flows, valid, generator=torch.Generator().manual_seed(1),
                                      settings=NOISE_WARP_PRESETS["video_rate"], **kwargs)
    assert _shifted_correlation(frozen[0], frozen[8], 0) > 0.9  # the failure the official settings avoid
    assert abs(_shifted_correlation(frozen[0], frozen[8], 1)) < 0.2


def test_official_settings_keep_every_latent_frame_standard_normal():
    flows, valid = rotation_flows(48, 64, 45, 1.0)
    latent = warped_noise_for_segment(flows, valid, channels=16, degradation=0.0,
                                      generator=torch.Generator().manual_seed(2))
    assert latent.shape == (13, 16, 6, 8)
    summary = noise_stats(latent)
    assert max(abs(m) for m in summary["mean"]) < 0.15 and max(abs(s - 1) for s in summary["std"]) < 0.15
    assert stats.kstest(latent.flatten().numpy(), "norm").pvalue > 0.01


def test_composed_flows_equal_the_direct_flow_over_the_stride():
    hop, hop_valid = rotation_flows(64, 64, 4, 2.0)
    direct, direct_valid = rotation_flows(64, 64, 1, 8.0)
    composed, composed_valid = compose_flows(torch.from_numpy(hop), torch.from_numpy(hop_valid), 4)
    both = composed_valid[0].numpy() & direct_valid[0]
    assert both.mean() > 0.7
    assert np.abs(composed[0].numpy()[both] - direct[0][both]).max() < 0.05
    assert not composed_valid[0].numpy()[~direct_valid[0]].any()  # what leaves the image stays invalid
