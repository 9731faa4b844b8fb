"""GGI training clips: textured renders with exact flows, RAFT flows with a forward-backward check, HED-S."""

import json

import numpy as np
import pytest
import torch
from blender_scenes import dolly_over_plane, export_glb_with_trajectory
from PIL import Image

from vf3d.ggi.training import load_clip, save_clip
from vf3d.ggi.training_set import (clip_from_render, clip_from_video, depth_pictures_by_estimator, depth_to_image,
                                   read_video_frames, video_folders)
from vf3d.models.depth_estimator import estimate_depth, load_depth_estimator
from vf3d.models.hed import ClassicalEdgeDetector
from vf3d.models.raft import estimate_flows, forward_backward_valid, load_raft
from vf3d.models.weights import MissingWeightsError

torch.set_num_threads(1)
W, H = 64, 48


@pytest.fixture(scope="module")
def rendered_clip(shots, tmp_path_factory):
    shot = dolly_over_plane(shots / "training_dolly.blend", frames=12, step=0.1, occluder=True)
    workdir = tmp_path_factory.mktemp("training_render")
    return clip_from_render(shot, W, H, 9, seed=3, edge_detector=ClassicalEdgeDetector(), workdir=workdir,
                            prompt="a textured test plane")


def test_clip_from_render(rendered_clip, tmp_path):
    clip = rendered_clip
    assert len(clip.frames) == 9 and len(clip.structure) == 9  # the 12-frame shot is cut to 9
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in clip.frames)
    assert min(f.std() for f in clip.frames) > 2  # textured, not flat
    assert min(np.abs(a.astype(int) - b).mean() for a, b in zip(clip.frames, clip.frames[1:])) > 1
    assert clip.flows.shape == (8, H, W, 2) and clip.flows.dtype == np.float32
    assert clip.valid.shape == (8, H, W) and clip.valid.dtype == bool
    assert clip.valid.mean() > 0.8
    # the camera moves +x by 0.1 at 10 above the ground: it slides left by fx * 0.1 / 10 = 0.53 px a frame
    assert np.median(clip.flows[clip.valid][:, 0]) == pytest.approx(-0.53, abs=0.02)
    assert all(s.shape == (H, W) and s.dtype == np.uint8 and s.max() > 100 for s in clip.structure)
    assert not all(np.array_equal(clip.structure[0], s) for s in clip.structure[1:])
    save_clip(clip, tmp_path / "clip")
    loaded = load_clip(tmp_path / "clip")
    assert loaded.prompt == clip.prompt
    for a, b in [*zip(loaded.frames, clip.frames), *zip(loaded.structure, clip.structure),
                 (loaded.flows, clip.flows), (loaded.valid, clip.valid)]:
        np.testing.assert_array_equal(a, b)


def test_clip_from_a_mesh_and_trajectory_is_cut_to_num_frames(shots, tmp_path):
    blend = dolly_over_plane(shots / "training_mesh.blend", frames=6, step=0.2, occluder=True)
    glb, trajectory = export_glb_with_trajectory(blend, tmp_path / "shot.glb", tmp_path / "shot.json", frames=6)
    clip = clip_from_render(glb, 72, 48, 4, seed=0, edge_detector=ClassicalEdgeDetector(), workdir=tmp_path / "work",
                            trajectory=trajectory)  # the trajectory is for 720x480: keep its aspect ratio
    assert len(clip.frames) == 4 and clip.flows.shape == (3, 48, 72, 2) and clip.valid.mean() > 0.8
    assert len(json.loads((tmp_path / "work" / "trajectory.json").read_text())["camera_to_world"]) == 4


def test_depth_to_image():
    depth = np.full((4, 6), np.inf, np.float32)
    depth[1, 1], depth[1, 2], depth[2, 3] = 2.0, 4.0, 8.0
    image = depth_to_image(depth)
    assert image.dtype == np.uint8 and image[1, 1] == 255
    assert 255 > image[1, 2] > image[2, 3] > 0  # nearer = brighter, geometry above background
    assert image[0, 0] == 0 and (image[~np.isfinite(depth)] == 0).all()
    disparity = np.where(np.isfinite(depth), 1 / depth, 0)
    np.testing.assert_array_equal(depth_to_image(disparity, disparity=True), image)
    assert (depth_to_image(np.full((4, 6), np.inf)) == 0).all() and (depth_to_image(np.ones((4, 6))) == 0).all()


def test_forward_backward_check_on_a_constant_shift():
    shift = np.zeros((H, W, 2), np.float32)
    shift[..., 0], shift[..., 1] = 3.0, -2.0
    valid = forward_backward_valid(shift, -shift)
    inside = np.zeros((H, W), bool)
    inside[2:, : W - 3] = True  # x + 0.5 + 3 < W and y + 0.5 - 2 >= 0
    np.testing.assert_array_equal(valid, inside)
    assert not forward_backward_valid(shift, np.zeros_like(shift)).any()  # |f_fw + f_bw| = 3.6 > 1 + 0.18
    # tolerance: 1 + 0.05 * |(3, -2)| = 1.18 px
    assert forward_backward_valid(shift, -shift + 0.8)[inside].all()  # |(0.8, 0.8)| = 1.13
    assert not forward_backward_valid(shift, -shift + 0.85).any()  # |(0.85, 0.85)| = 1.20
    batched = forward_backward_valid(np.stack([shift, shift]), np.stack([-shift, np.zeros_like(shift)]))
    assert batched.shape == (2, H, W) and batched[0].sum() == inside.sum() and not batched[1].any()


def test_raft_from_a_state_dict(tmp_path):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft.pth")
    with pytest.raises(MissingWeightsError, match="missing.pth"):
        load_raft(tmp_path / "missing.pth", large=False)
    with pytest.raises(ValueError, match="raft.pth"):
        load_raft(tmp_path / "raft.pth", large=True)
    model = load_raft(tmp_path / "raft.pth", large=False)
    frames = [np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8) for k in range(3)]
    flows, valid = estimate_flows(frames, model, num_flow_updates=2)
    assert flows.shape == (2, H, W, 2) and flows.dtype == np.float32 and np.isfinite(flows).all()
    assert valid.shape == (2, H, W) and valid.dtype == bool


class ShiftByBrightness(torch.nn.Module):
    """A RAFT stand-in: flow x = 10 px per unit of mean brightness change, checking RAFT's input contract."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, first, second, num_flow_updates=12):
        assert first.shape[-2] % 8 == 0 and first.shape[-1] % 8 == 0 and min(first.shape[-2:]) >= 128
        assert first.min() >= -1 and first.max() <= 1
        flow = torch.zeros(first.shape[0], 2, *first.shape[-2:])
        flow[:, 0] = 10 * (second - first).mean(dim=(1, 2, 3))[:, None, None]
        return [flow]


def test_raft_input_and_output_scaling():
    frames = [np.full((H, W, 3), v, np.uint8) for v in (0, 51, 102)]  # [-1, 1]: steps of 0.4 -> 4 px
    flows, valid = estimate_flows(frames, ShiftByBrightness(), batch_size=3)
    # 64x48 runs at 171x128 (padded to 176x128): 4 px there are 4 * 64 / 171 px here
    np.testing.assert_allclose(flows[..., 0], 4 * W / 171, rtol=1e-5)
    np.testing.assert_allclose(flows[..., 1], 0, atol=1e-6)
    assert valid[:, :, : W - 1].all() and not valid[:, :, W - 1].any()  # 63.5 + 1.5 leaves the image


@pytest.fixture(scope="module")
def tiny_depth_model(tmp_path_factory):
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(0)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                       image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
                       neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16)
    folder = tmp_path_factory.mktemp("dpt_tiny")
    DPTForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(folder)
    return folder


def test_depth_estimator_from_a_folder(tiny_depth_model, tmp_path):
    with pytest.raises(MissingWeightsError, match="no_depth_model"):
        load_depth_estimator(tmp_path / "no_depth_model")
    model, processor = load_depth_estimator(tiny_depth_model)
    frames = [np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8) for k in range(3)]
    maps = estimate_depth(frames, model, processor, batch_size=2)
    assert len(maps) == 3
    assert all(m.shape == (H, W) and m.dtype == np.float32 and np.isfinite(m).all() for m in maps)
    model.config.depth_estimation_type = "metric"  # as Depth Anything metric: depth is inverted to disparity
    inverted = estimate_depth(frames, model, processor, batch_size=2)
    np.testing.assert_allclose(inverted[0], 1 / np.maximum(maps[0], 1e-6), rtol=1e-5)


def test_clip_from_video_folder(tiny_depth_model, tmp_path):
    from torchvision.models.optical_flow import raft_small

    scene = tmp_path / "1K" / "scene_a"
    for name, size in (("images_4", (80, 45)), ("images_8", (40, 23))):
        (scene / name).mkdir(parents=True)
        for k in range(5):
            Image.new("RGB", size, (40 * k, 100, 200)).save(scene / name / f"frame_{k + 1:05d}.png")
    (tmp_path / "flat").mkdir()
    for k in range(2):
        Image.new("RGB", (32, 24)).save(tmp_path / "flat" / f"{k:03d}.jpg")
    (tmp_path / "empty").mkdir()
    assert video_folders(tmp_path) == [scene, tmp_path / "flat"]
    frames = read_video_frames(scene, 3, stride=2, size=(W, H))  # images_8 is too small: images_4
    assert [f.shape for f in frames] == [(H, W, 3)] * 3 and [int(f[0, 0, 0]) for f in frames] == [0, 80, 160]
    with pytest.raises(ValueError, match="5 frames"):
        read_video_frames(scene, 4, stride=2)

    torch.manual_seed(0)
    model, processor = load_depth_estimator(tiny_depth_model)
    clip = clip_from_video(frames, raft_small(weights=None).eval(), depth_pictures_by_estimator(model, processor),
                           ClassicalEdgeDetector(), prompt="a test video")
    assert clip.flows.shape == (2, H, W, 2) and clip.valid.shape == (2, H, W)
    assert len(clip.structure) == 3 and all(s.shape == (H, W) and s.dtype == np.uint8 for s in clip.structure)
    assert clip.prompt == "a test video"


def test_zoom_crop_covers_the_size_times_1_1_with_one_random_crop_per_clip(tmp_path):
    x, y = np.meshgrid(np.arange(220), np.arange(100))
    for k in range(2):  # frames whose colour encodes the source pixel: R = x, G = 2y, B = frame
        Image.fromarray(np.stack([x, 2 * y, np.full_like(x, k)], -1).astype(np.uint8)).save(tmp_path / f"{k}.png")
    centre = read_video_frames(tmp_path, 2, size=(88, 40))
    assert centre[0][20, 0, 0] <= 1 and centre[0][20, -1, 0] >= 218  # the whole width
    lefts = set()
    for seed in range(6):
        first, second = read_video_frames(tmp_path, 2, size=(88, 40), crop_seed=seed)
        np.testing.assert_array_equal(first[..., :2], second[..., :2])  # one crop for the whole clip
        # 220 x 100 covers 88 x 40 at x0.4; x1.1 more gives 96 x 44, of which 88 x 40 are kept: 88/96 of the width
        span = int(first[20, -1, 0]) - int(first[20, 0, 0])
        assert abs(span - 220 * 88 / 96) <= 3, span
        assert 0 <= first[20, 0, 0] <= 220 * 8 / 96 + 2
        lefts.add(int(first[20, 0, 0]))
    assert len(lefts) >= 3  # the crop is random
