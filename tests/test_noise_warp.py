"""Go-with-the-Flow noise warping: Gaussianity, exact transport, the reference twin, the latent readout."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from vf3d.common.warp import pixel_centres
from vf3d.ggi.noise_warp import (
    NOISE_WARP_PRESETS,
    NoiseWarpSettings,
    WarpState,
    compose_flow_hops,
    compose_flows,
    initial_state,
    latent_noise,
    mix_with_fresh,
    noise_frame_indices,
    noise_stats,
    upsample_flows,
    warp_noise_sequence,
    warp_noise_step,
    warp_noise_step_official,
    warp_noise_step_official_reference,
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
    """0.25 px per frame to the right at 128x128: at noise frame 8 (frame 30, official cadence) the content moved
    7.5 px, 30 of a latent cell's 32 field columns, and so must the noise; warping every 0.25 px flow at video
    resolution rounds each step to no motion, so the noise stays where it was (what the official cadence and
    resolution avoid)."""
    h = w = 128
    flows = np.zeros((45, h, w, 2), np.float32)
    flows[..., 0] = 0.25
    valid = np.ones((45, h, w), bool)
    kwargs = dict(channels=4, degradation=0.0, num_frames=49)
    paper = warped_noise_for_segment(flows, valid, generator=torch.Generator().manual_seed(1), **kwargs)
    assert NOISE_WARP_PRESETS["paper"] == NoiseWarpSettings(resolution_scale=4, flow_stride=None,
                                                            weighted_readout=False, warp="official")
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


# Fork `assets/exampleA/town.blend`, text block "Text" (extracted with bpy), l. 167-168, arc i = 0:
#     indxs = list(range(i * 45 + 1, (i + 1) * 45 + 2))
#     indxs = np.linspace(indxs[0], indxs[-1], 13).astype('int')
# -> Blender frames 1, 4, 8, 12, 16, 19, 23, 27, 31, 34, 38, 42, 46 (l. 170-175 render one correspondence map
# per frame after the first, from the previous one: `assets/sampleA/arc0/corres/0004.png` ... `0046.png`),
# i.e. segment frames (0-based):
OFFICIAL_NOISE_FRAMES = [0, 3, 7, 11, 15, 18, 22, 26, 30, 33, 37, 41, 45]


def test_noise_frame_indices_are_the_official_linspace():
    assert noise_frame_indices(46, 13) == OFFICIAL_NOISE_FRAMES


def _pan_cells(frames: int, width_cells: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A pan of one latent cell (8 px) per frame to the right, 8 px tall; columns leaving are invalid."""
    return shift_flows(8, 8 * width_cells, frames, 8)


def _shift_of(latent: torch.Tensor, frame: int) -> int | None:
    """How many latent cells latent frame `frame` is frame 0 moved right by (None: no shift matches)."""
    width = latent.shape[-1]
    for shift in range(width - 2):
        if torch.allclose(latent[frame][..., shift:], latent[0][..., : width - shift], atol=1e-4):
            return shift
    return None


def test_paper_noise_frames_follow_the_official_cadence():
    """Noise frame k of the paper preset is the first frame's noise carried to segment frame
    OFFICIAL_NOISE_FRAMES[k], not 4k (vf3d's earlier stride-4 cadence)."""
    flows, valid = _pan_cells(45)
    latent = warped_noise_for_segment(flows, valid, channels=1, degradation=0.0,
                                      generator=torch.Generator().manual_seed(0), settings=NOISE_WARP_PRESETS["paper"])
    assert latent.shape == (13, 1, 1, 48)
    assert [_shift_of(latent, k) for k in range(13)] == OFFICIAL_NOISE_FRAMES
    stride = warped_noise_for_segment(flows, valid, channels=1, degradation=0.0,
                                      generator=torch.Generator().manual_seed(0),
                                      settings=NOISE_WARP_PRESETS["latent_stride"])
    assert [_shift_of(stride, k) for k in range(13)] == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 45]


def test_a_short_segment_keeps_the_cadence_and_holds_its_last_frame():
    """A 20-frame segment (the last of a shot) is padded with still frames to 46, as GGI pads its edge maps:
    noise frames at the official indices, those past frame 19 holding frame 19's noise. (The official script
    only makes 46-frame segments; a shorter one would get linspace(0, 19, 13) and be stretched in time.)"""
    flows, valid = _pan_cells(19)
    latent = warped_noise_for_segment(flows, valid, channels=1, degradation=0.0,
                                      generator=torch.Generator().manual_seed(1))
    assert [_shift_of(latent, k) for k in range(13)] == [min(i, 19) for i in OFFICIAL_NOISE_FRAMES]


def test_paper_segment_noise_is_the_official_warp_along_the_composed_hops():
    """The whole paper path: 4x field, official warp step along flows composed between the official noise
    frames, plain 32x area readout, then the 0.5 mix, for the same generator."""
    flows, valid = rotation_flows(16, 24, 45, 3.0)
    direct = warped_noise_for_segment(flows, valid, channels=2, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    hops, hops_valid = compose_flow_hops(torch.from_numpy(flows), torch.from_numpy(valid), OFFICIAL_NOISE_FRAMES)
    state = initial_state(64, 96, 2, g)
    readouts = [F.avg_pool2d(state.noise.permute(2, 0, 1)[None], 32)[0] * 32]
    for hop, hop_valid in zip(hops, hops_valid):
        big, big_valid = upsample_flows(hop[None], hop_valid[None], 4)
        state = warp_noise_step_official(state, big[0], big_valid[0], g)
        readouts.append(F.avg_pool2d(state.noise.permute(2, 0, 1)[None], 32)[0] * 32)
    torch.testing.assert_close(direct, mix_with_fresh(torch.stack(readouts), 0.5, g))


@pytest.mark.parametrize("seed", range(6))
def test_official_step_matches_its_reference(seed):
    g = torch.Generator().manual_seed(seed)
    h, w, c = 6, 7, 3
    state = WarpState(torch.randn(h, w, c, generator=g), torch.rand(h, w, generator=g) + 0.5, torch.zeros(h, w, 2))
    flow = (torch.rand(h, w, 2, generator=g) - 0.5) * 5  # +-2.5 px: collisions, holes, pulls from anywhere
    if seed % 2:
        flow = flow.round() + 0.5 * (torch.rand(h, w, 2, generator=g) > 0.7)  # ties round half to even
    valid = torch.rand(h, w, generator=g) > 0.25
    randn = torch.randn(2, h, w, c, generator=g)
    fast = warp_noise_step_official(state, flow, valid, randn)
    slow = warp_noise_step_official_reference(state, flow, valid, randn)
    torch.testing.assert_close(fast.noise, slow.noise, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight, slow.weight, rtol=1e-5, atol=1e-7)


def test_official_warp_copies_noise_into_a_disocclusion_unchecked():
    """One row of 10 pixels: columns 3-5 (an object) move 3 px right over a still background, covering
    background columns 6-8 (no correspondence: invalid) and uncovering 3-5. Expected values derived by hand from
    `warp_xyωc` (fork `assets/mk_noise.py`):
    - contract (l. 314-329): 0-2 and 9 land on themselves, 3-5 on 6-8; the invalid 6-8 (official flow -10000)
      land outside and are reset to `init` (noise 0, density 1, l. 271-275) on their own pixels 6-8;
    - shrink mask (l. 350-352): 0, 1, 2, 6, 7, 8, 9; expand (l. 294-299): 3, 4, 5 pull from round(q - 3) =
      0, 1, 2, although those land 3 px away (no consistency check);
    - regaussianize by value (l. 146-184): the values of 0, 1, 2 appear twice (k = 2); the zero group holds the
      three reset particles and the seven expand entries of masked pixels (l. 358): 10;
    - densities / k (l. 371); merges sum(w n) / sqrt(sum w^2) (l. 378-381); then / mean + 1e-5, ** .9999
      (l. 384-396).
    vf3d's checked warp gives 3-5 fresh noise instead (the sources land 3 px > MAX_EXPAND_ERROR away)."""
    g = torch.Generator().manual_seed(0)
    state = WarpState(torch.randn(1, 10, 1, generator=g), torch.ones(1, 10), torch.zeros(1, 10, 2))
    flow = torch.zeros(1, 10, 2)
    flow[0, 3:6, 0] = 3.0
    valid = torch.ones(1, 10, dtype=torch.bool)
    valid[0, 6:9] = False
    randn = torch.randn(2, 1, 10, 1, generator=g)
    v, zc, ze = state.noise[0, :, 0], randn[0, 0, :, 0], randn[1, 0, :, 0]  # value; contract, expand draws
    expected = torch.empty(10)
    for source, copy in ((0, 3), (1, 4), (2, 5)):
        mean = (zc[source] + ze[copy]) / 2
        expected[source] = v[source] / math.sqrt(2) + zc[source] - mean
        expected[copy] = v[source] / math.sqrt(2) + ze[copy] - mean
    zero_mean = (zc[6:9].sum() + ze[[0, 1, 2, 6, 7, 8, 9]].sum()) / 10
    for moved, covered in ((3, 6), (4, 7), (5, 8)):
        expected[covered] = (1.0 * v[moved] + 0.1 * (zc[covered] - zero_mean)) / math.sqrt(1.0 + 0.1 ** 2)
    expected[9] = v[9]
    density = torch.tensor([0.5] * 6 + [1.1] * 3 + [1.0])
    density = (density / density.mean() + 1e-5) ** 0.9999

    official = warp_noise_step_official(state, flow, valid, randn)
    torch.testing.assert_close(official.noise[0, :, 0], expected)
    torch.testing.assert_close(official.weight[0], density, rtol=1e-6, atol=0.0)
    checked = warp_noise_step(state, flow, valid, randn)
    assert torch.equal(checked.noise[0, 3:6, 0], ze[3:6])  # fresh draws
    assert torch.equal(checked.noise[0, [0, 1, 2, 6, 7, 8, 9], 0], v[[0, 1, 2, 3, 4, 5, 9]])
    assert NOISE_WARP_PRESETS["paper"].warp == "official" and NOISE_WARP_PRESETS["latent_stride"].warp == "checked"


def zoom_flows(height: int, width: int, frames: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """f_i->i+1 of a zoom about the image centre by `scale` per frame; pixels leaving the image are invalid."""
    p = pixel_centres(height, width).astype(np.float64)
    centre = np.array([width / 2, height / 2])
    landing = (p - centre) * scale + centre
    flow = (landing - p).astype(np.float32)
    valid = (landing[..., 0] >= 0) & (landing[..., 0] < width) & (landing[..., 1] >= 0) & (landing[..., 1] < height)
    return np.repeat(flow[None], frames, 0), np.repeat(valid[None], frames, 0)


@pytest.mark.parametrize("motion", ["rotation", "zoom_in", "zoom_out"])
def test_official_warp_keeps_every_frame_standard_normal(motion):
    """Rotation, and zooms whose every step splits (in: 1 pixel in 7 is a hole to expand into) or merges (out)
    particles."""
    flows, valid = {"rotation": lambda: rotation_flows(128, 128, 12, 3.0),
                    "zoom_in": lambda: zoom_flows(128, 128, 12, 1.08),
                    "zoom_out": lambda: zoom_flows(128, 128, 12, 1 / 1.08)}[motion]()
    noise = warp_noise_sequence(flows, valid, channels=2, generator=torch.Generator().manual_seed(3), warp="official")
    summary = noise_stats(noise)
    assert max(abs(m) for m in summary["mean"]) < 0.03 and max(abs(s - 1) for s in summary["std"]) < 0.03
    sample = noise[[6, 12], :, ::4, ::4].flatten().numpy()
    assert stats.kstest(sample, "norm").pvalue > 0.01
    with pytest.raises(ValueError, match="subpixel"):
        warp_noise_sequence(flows, valid, channels=2, subpixel=True, warp="official")
