"""The size anchors are sampled at (1.5x the video, x-flux's rounding) and the way back to the video size."""

import json
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from vf3d.sag.anchors import generate_anchors
from vf3d.sag.resolution import resize_flow, sag_size, to_video_size
from vf3d.sag.sampling import SAG_PRESETS, SAGOutput, with_overrides, xflux_sigmas


def test_anchor_size_is_the_official_edge_map_size_after_xflux_rounding():
    """Official: `args.width, args.height = Image.open(path_heds[0]).size` (`sag_generate_anchor_view.py:560`),
    the HED maps `assets/sampleA/arc*/hed/*.png` are 1080x720, then `width = 16 * (width // 16)`,
    `height = 16 * (height // 16)` (l. 179-180), for a 720x480 video (`ggi.py:195-196`)."""
    hed_png_size = (1080, 720)
    width, height = hed_png_size
    official = (16 * (width // 16), 16 * (height // 16))
    assert official == (1072, 720)
    assert SAG_PRESETS["paper"].resolution_scale == 1.5
    assert sag_size(720, 480, SAG_PRESETS["paper"].resolution_scale) == official
    assert sag_size(720, 480, 1.0) == (720, 480)  # the option: at the video size


def test_schedule_shift_at_the_anchor_size_is_xflux_get_schedule():
    """x-flux `src/flux/sampling.py:68-97` `get_schedule(num_steps, image_seq_len, base_shift=0.5, max_shift=1.15,
    shift=True)`, called with `(width // 8) * (height // 8) // (16 * 16)` (`sag_generate_anchor_view.py:66-70`),
    written out: 47 tokens at 1072x720 (21 at 720x480)."""
    width, height, steps = 1072, 720, 25
    image_seq_len = (width // 8) * (height // 8) // (16 * 16)
    assert image_seq_len == 47
    m = (1.15 - 0.5) / (4096 - 256)
    mu = m * image_seq_len + (0.5 - m * 256)
    timesteps = np.linspace(1, 0, steps + 1)
    with np.errstate(divide="ignore"):
        official = math.exp(mu) / (math.exp(mu) + (1 / timesteps - 1) ** 1.0)
    config = {"base_image_seq_len": 256, "max_image_seq_len": 4096, "base_shift": 0.5, "max_shift": 1.15}
    ours = xflux_sigmas(SAG_PRESETS["paper"], height, width, config)
    # diffusers then shifts by its own mu(packed tokens); compose the two shifts as the pipeline does
    packed = (height // 16) * (width // 16)
    mu_diffusers = 0.5 + (1.15 - 0.5) / (4096 - 256) * (packed - 256)
    shifted = math.exp(mu_diffusers) / (math.exp(mu_diffusers) + (1 / ours - 1))
    np.testing.assert_allclose(shifted, official[:-1], rtol=1e-6)


def _guidance(folder, width: int, height: int, segments: list[list[int]]) -> None:
    (folder / "edges").mkdir(parents=True)
    (folder / "flows").mkdir()
    (folder / "meta.json").write_text(json.dumps({"height": height, "width": width, "segments": segments}))
    for i in range(segments[-1][1] + 1):
        picture = np.zeros((height, width), np.uint8)
        picture[height // 3, :] = picture[:, width // 2 + i] = 255
        Image.fromarray(picture).save(folder / "edges" / f"{i:05d}.png")
    for k, (start, end) in enumerate(segments):
        flow = np.zeros((height, width, 2), np.float32)
        flow[..., 0] = 3.0  # view N sees at x what view 0 has at x + 3 (video pixels)
        valid = np.ones((height, width), bool)
        valid[:, -3:] = False  # leaving the picture
        np.savez(folder / "flows" / f"seg{k:03d}.npz", end_to_start=flow, end_to_start_valid=valid)


class RecordingSAG:
    """Stands in for SAGPipeline: records what it is asked for, returns a gradient picture of that size."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompt, control, height, width, warped, valid, settings, generator):
        self.calls.append({"height": height, "width": width, "control": control.size,
                           "warped": None if warped is None else warped.shape, "valid": valid})
        x = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
        y = np.linspace(0, 255, height)[:, None, None] * np.ones((1, width, 3))
        return SAGOutput(image=Image.fromarray(((x + y) / 2 + len(self.calls)).clip(0, 255).astype(np.uint8)))


@pytest.mark.parametrize("scale, sampled", [(1.5, (96, 64)), (1.0, (64, 48))])
def test_anchors_are_sampled_at_the_anchor_size_and_written_at_the_video_size(tmp_path, scale, sampled):
    """A 64x48 video: 96x72 edge maps, x-flux floors to 96x64. The control map, the warped previous anchor and
    the mask are at that size; `anchors/` holds what `ggi.py:219` reads, `Image.open(path).resize((args.width,
    args.height))`, i.e. the sampled picture resized by PIL's default filter."""
    guidance = tmp_path / "guidance"
    _guidance(guidance, 64, 48, [[0, 2], [2, 4]])
    sag = RecordingSAG()
    settings = with_overrides(SAG_PRESETS["paper"], resolution_scale=scale)
    out = tmp_path / "anchors"
    generate_anchors(sag, guidance, out, ["p"] * 3, lambda e: e, settings, lambda k: torch.Generator().manual_seed(k))
    w, h = sampled
    assert [(c["width"], c["height"]) for c in sag.calls] == [(w, h)] * 3
    assert all(c["control"] == (w, h) for c in sag.calls)
    assert sag.calls[0]["warped"] is None and sag.calls[1]["warped"] == (h, w, 3)
    assert Image.open(out / "masks" / "00002.png").size == (w, h)
    for frame in (0, 2, 4):
        sampled_picture = Image.open(out / "sag_size" / f"{frame:05d}.png")
        assert sampled_picture.size == (w, h)
        official_read = Image.open(out / "sag_size" / f"{frame:05d}.png").resize((64, 48))  # ggi.py:219
        np.testing.assert_array_equal(np.asarray(Image.open(out / "anchors" / f"{frame:05d}.png")),
                                      np.asarray(official_read))
    record = json.loads((out / "anchors.json").read_text())
    assert record["sag_size"] == [w, h] and record["video_size"] == [64, 48]
    # The flow was resized with the anchor: 3 video pixels are 3 * w / 64 anchor pixels; the invalid border scales.
    valid = sag.calls[1]["valid"]
    assert valid.shape == (h, w) and valid[:, : w - 5].all() and not valid[:, -3:].any()


def test_resized_flow_keeps_only_fully_covered_pixels_and_scales_vectors():
    """Official `resize_colorcode` (`sag_generate_anchor_view.py:478-482`), written out: `cv2.resize(colorcode,
    (width, height), interpolation=cv2.INTER_LINEAR)`, `mask = (colorcode[..., 0] == (2**16 - 1))`; the coverage
    channel is 65535 where the correspondence is known."""
    rng = np.random.default_rng(0)
    valid = rng.random((24, 36)) > 0.1
    ys, xs = np.mgrid[0:24, 0:36]
    flow = np.stack([0.5 * xs + 1.0, -0.25 * ys], -1).astype(np.float32)  # affine: resizes exactly inside
    colorcode = np.zeros((24, 36, 3), np.uint16)
    colorcode[..., 0] = np.where(valid, 65535, 0)
    colorcode = cv2.resize(colorcode, (54, 36), interpolation=cv2.INTER_LINEAR)
    official_mask = colorcode[..., 0] == (2**16 - 1)
    resized, resized_valid = resize_flow(flow, valid, (54, 36))
    np.testing.assert_array_equal(resized_valid, official_mask)
    assert 0 < resized_valid.mean() < valid.mean()
    # the vectors: flow at the centre of anchor pixel (x', y') = 1.5 x the video flow at ((x' + 0.5) / 1.5 - 0.5, ...)
    yy, xx = np.mgrid[2:34, 2:52]
    source_x, source_y = (xx + 0.5) / 1.5 - 0.5, (yy + 0.5) / 1.5 - 0.5
    expected = np.stack([1.5 * (0.5 * source_x + 1.0), 1.5 * (-0.25 * source_y)], -1)
    np.testing.assert_allclose(resized[2:34, 2:52], expected, atol=1e-4)


def test_to_video_size_is_pil_default_resize():
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (72, 96, 3), dtype=np.uint8))
    np.testing.assert_array_equal(np.asarray(to_video_size(picture, 64, 48)), np.asarray(picture.resize((64, 48))))
