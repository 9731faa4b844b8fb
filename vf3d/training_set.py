"""GGI training clips (paper Sec. 3.4, Fig. 9): frames, forward flows with valid masks, HED-S structure maps.

The paper trains GGI on DL3DV-10K videos of static scenes: flows by RAFT drive the warped noise, and the
structure maps are HED of a monocular depth estimate ("HED-S"), so that they carry no texture, like the
edges of coarse geometry seen at inference. Two sources share the output (`vf3d.ggi_training.TrainingClip`):

- `tiny` profile, `clip_from_render`: a benchmark shot rendered with random textures (Cycles), with the exact
  flows and planar depth of `vf3d.guidance.preprocess`; structure = edge detector on `depth_to_image(depth)`.
- `full` profile, `clip_from_video`: real frames, flows by torchvision's RAFT with a forward-backward check
  (`estimate_flows`), relative inverse depth by a transformers depth model (`estimate_depth`, MiDaS/DPT as in
  the paper, or Depth Anything), structure = HED on `depth_to_image(disparity, disparity=True)`.

Video layout read by `video_folders` / `read_video_frames` (DL3DV-style; nothing is downloaded)::

    ROOT/                         any depth of plain folders, e.g. DL3DV-10K/1K/
      <scene>/                    a video folder: it holds an images*/ folder of frames ...
        images/ images_2/ images_4/ images_8/   frame_00001.png ... (DL3DV: full size and downsampled x2/x4/x8)
        transforms.json ...       (anything else is ignored)
      <other scene>/              ... or holds the frame images directly
        00000.jpg 00001.jpg ...

Frames are the folder's .png/.jpg/.jpeg/.webp/.bmp files sorted by name. With several images* folders, the
smallest frames that are still at least the requested size are read. Frames are centre-cropped to the
requested aspect ratio, then resized.

Weights (full profile, never downloaded): RAFT as a torchvision state dict (`raft_large_C_T_SKHT_V2-ff5fadd5.pth`
or `raft_small_C_T_V2-01064c6d.pth`, or a folder holding it) for `load_raft`; a transformers depth model
folder (`save_pretrained` layout, e.g. Intel/dpt-hybrid-midas or depth-anything/Depth-Anything-V2-Small-hf)
for `load_depth_estimator`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vf3d.ggi_training import TrainingClip
from vf3d.models.hed import EdgeDetector
from vf3d.models.weights import first_existing

DEFAULT_PROMPT = "a video of a static scene"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
RAFT_FILES = {True: "raft_large_C_T_SKHT_V2-ff5fadd5.pth", False: "raft_small_C_T_V2-01064c6d.pth"}
RAFT_MIN_SIZE = 128
"""torchvision's RAFT needs feature maps (1/8 of the input) of at least 16 px for its 4-level correlation pyramid."""
FB_ABS_TOLERANCE, FB_REL_TOLERANCE = 1.0, 0.05
METRIC_DEPTH_MODEL_TYPES = frozenset({"glpn", "zoedepth", "depth_pro", "prompt_depth_anything"})
"""transformers depth models that predict metric depth; all others (DPT/MiDaS, Depth Anything relative)
predict relative inverse depth (disparity, larger = nearer, known up to scale and shift)."""


# --- HED-S -----------------------------------------------------------------------------------------------

def depth_to_image(depth: np.ndarray, disparity: bool = False) -> np.ndarray:
    """The picture HED sees for HED-S: inverse depth min-max normalised per frame to 0..255, near = bright.

    `depth`: (H, W) planar depth (inf or non-positive = background, inverse depth 0) or, with `disparity`,
    relative inverse depth as monocular estimators give it (larger = nearer; non-finite = 0). Background
    is the minimum of inverse depth, so it maps to 0; a constant map gives all zeros. MiDaS-style min-max
    normalisation (as controlnet_aux's depth annotator), so rendered and estimated depth look alike.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected an (H, W) map, got shape {depth.shape}")
    if disparity:
        inverse = np.where(np.isfinite(depth), depth, 0.0)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.where(depth > 0, 1.0 / depth, 0.0)  # inf -> 0, NaN and <= 0 -> 0
    low, high = inverse.min(), inverse.max()
    if not high > low:
        return np.zeros(depth.shape, np.uint8)
    return ((inverse - low) / (high - low) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


# --- tiny profile: textured renders with exact flows and depth ---------------------------------------------

def clip_from_render(source: Path, width: int, height: int, num_frames: int, seed: int,
                     edge_detector: EdgeDetector, workdir: Path, prompt: str = DEFAULT_PROMPT,
                     trajectory: Path | None = None, samples: int = 8) -> TrainingClip:
    """The first `num_frames` frames of a shot, rendered with random textures (seeded), with exact flows.

    Only those frames are rendered: the shot is first trimmed into `workdir` (a copy of the .blend with a
    shorter frame range, or a shorter trajectory JSON for mesh files). A shorter shot gives all its frames.
    `workdir`'s `frames/`, `guidance/` and trimmed shot are replaced on each call. Runs bpy (it resets the
    scene); flows are the forward flows f_i->i+1 of `vf3d.guidance.preprocess` across its segments.
    """
    from vf3d.blender.textured import load_frames, render_textured_clip
    from vf3d.guidance import preprocess

    if num_frames < 2:
        raise ValueError(f"num_frames: a clip needs at least 2 frames, got {num_frames}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source, trajectory = _trimmed_shot(Path(source), None if trajectory is None else Path(trajectory),
                                       num_frames, workdir)
    frames_dir, guidance_dir = workdir / "frames", workdir / "guidance"
    shutil.rmtree(frames_dir, ignore_errors=True)
    render_textured_clip(source, frames_dir, width, height, seed, samples=samples, trajectory=trajectory)
    preprocess(source, guidance_dir, width, height, trajectory=trajectory)
    frames = load_frames(frames_dir)[:num_frames]
    n = len(frames)
    forward, valid = [], []
    for segment in sorted((guidance_dir / "flows").glob("seg*.npz")):
        with np.load(segment) as data:
            forward.append(data["forward"])
            valid.append(data["forward_valid"])
    depth = np.load(guidance_dir / "depth.npy")[:n]
    structure = [edge_detector(depth_to_image(d)) for d in depth]
    return TrainingClip(frames, np.concatenate(forward)[: n - 1].astype(np.float32),
                        np.concatenate(valid)[: n - 1].astype(bool), structure, prompt)


def _trimmed_shot(source: Path, trajectory: Path | None, num_frames: int, workdir: Path
                  ) -> tuple[Path, Path | None]:
    """The shot cut to its first `num_frames` frames, written into `workdir` (the shot itself if not longer)."""
    if trajectory is not None:
        data = json.loads(trajectory.read_text())
        poses = data.get("camera_to_world")
        if not isinstance(poses, list) or len(poses) <= num_frames:
            return source, trajectory
        trimmed = workdir / "trajectory.json"
        trimmed.write_text(json.dumps({**data, "camera_to_world": poses[:num_frames]}))
        return source, trimmed
    if source.suffix.lower() != ".blend" or not source.is_file():
        return source, None  # load_shot reports the problem
    import bpy

    from vf3d.blender import quiet_stdout
    from vf3d.blender.scene_io import disable_autoexec

    disable_autoexec()
    with quiet_stdout():
        bpy.ops.wm.open_mainfile(filepath=str(source), load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    step = max(scene.frame_step, 1)
    if len(range(scene.frame_start, scene.frame_end + 1, step)) <= num_frames:
        return source, None
    scene.frame_end = scene.frame_start + (num_frames - 1) * step
    trimmed = workdir / "shot.blend"
    with quiet_stdout():
        bpy.ops.wm.save_as_mainfile(filepath=str(trimmed), copy=True, relative_remap=True)
    return trimmed, None


# --- full profile: real videos --------------------------------------------------------------------------

def model_device(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    parameter = next(model.parameters())
    return parameter.device, parameter.dtype


def load_raft(path: Path, large: bool = True, device: torch.device | str = "cpu") -> torch.nn.Module:
    """torchvision's RAFT (large or small) from a local state-dict .pth, or a folder holding torchvision's
    file of that name (`RAFT_FILES`); missing -> `MissingWeightsError` naming the paths looked at."""
    from torchvision.models.optical_flow import raft_large, raft_small

    path = Path(path)
    component = f"RAFT optical flow ({'raft_large' if large else 'raft_small'}, torchvision state dict)"
    file = first_existing(component, [path / RAFT_FILES[large]] if path.is_dir() else [path])
    model = (raft_large if large else raft_small)(weights=None)
    try:
        model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{file}: not a torchvision {'raft_large' if large else 'raft_small'} state dict "
                         f"({str(exc).splitlines()[0]}); pass large={not large} if it is the other model") from None
    return model.to(device).eval().requires_grad_(False)


def _as_raft_input(frames: Sequence[np.ndarray], scale: float, padded: tuple[int, int]) -> torch.Tensor:
    """(F, 3, H', W') in [-1, 1] (torchvision's `OpticalFlow` transform), resized by `scale`, edge-padded."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    height, width = x.shape[-2:]
    if scale != 1.0:
        x = F.interpolate(x, size=(round(height * scale), round(width * scale)), mode="bilinear",
                          align_corners=False, antialias=False)
    return F.pad(x, (0, padded[1] - x.shape[-1], 0, padded[0] - x.shape[-2]), mode="replicate")


@torch.no_grad()
def raft_flows(frames: Sequence[np.ndarray], model: torch.nn.Module, pairs: Sequence[tuple[int, int]],
               batch_size: int = 4, num_flow_updates: int = 12) -> np.ndarray:
    """RAFT flows f_i->j for each (i, j) in `pairs`: (P, H, W, 2) float32 in pixels (vf3d convention).

    Inputs are scaled to [-1, 1]; frames smaller than `RAFT_MIN_SIZE` are upsampled first (flows scaled
    back), and padded on the bottom/right to multiples of 8 (flows cropped back).
    """
    height, width = frames[0].shape[:2]
    scale = max(1.0, RAFT_MIN_SIZE / min(height, width))
    scaled = (round(height * scale), round(width * scale))
    padded = tuple(-(-s // 8) * 8 for s in scaled)
    device, dtype = model_device(model)
    images = _as_raft_input(frames, scale, padded)
    out = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        first = images[[i for i, _ in chunk]].to(device, dtype)
        second = images[[j for _, j in chunk]].to(device, dtype)
        flow = model(first, second, num_flow_updates=num_flow_updates)[-1].float()[..., : scaled[0], : scaled[1]]
        if scale != 1.0:
            flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
            flow = flow * torch.tensor([width / scaled[1], height / scaled[0]], device=flow.device)[:, None, None]
        out.append(flow.permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def forward_backward_valid(forward: np.ndarray, backward: np.ndarray, abs_tolerance: float = FB_ABS_TOLERANCE,
                           rel_tolerance: float = FB_REL_TOLERANCE) -> np.ndarray:
    """Forward-backward consistency of flows f_i->j (forward) and f_j->i (backward), (..., H, W, 2) each.

    p is valid when p + f_fw(p) lies inside the image (pixel-centre coordinates in [0, W) x [0, H)) and
    |f_fw(p) + f_bw(p + f_fw(p))| < abs_tolerance + rel_tolerance * |f_fw(p)|, f_bw sampled bilinearly.
    """
    forward, backward = np.asarray(forward, np.float32), np.asarray(backward, np.float32)
    shape = forward.shape
    height, width = shape[-3:-1]
    fw = torch.from_numpy(forward.reshape(-1, height, width, 2))
    bw = torch.from_numpy(backward.reshape(-1, height, width, 2))
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    target = torch.stack([xs, ys], -1) + fw  # (B, H, W, 2) pixel-centre coordinates in view j
    grid = target / torch.tensor([width, height]) * 2 - 1
    sampled = F.grid_sample(bw.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border",
                            align_corners=False).permute(0, 2, 3, 1)
    inside = (target[..., 0] >= 0) & (target[..., 0] < width) & (target[..., 1] >= 0) & (target[..., 1] < height)
    error = (fw + sampled).norm(dim=-1)
    valid = inside & (error < abs_tolerance + rel_tolerance * fw.norm(dim=-1))
    return valid.numpy().reshape(shape[:-1])


def estimate_flows(frames: Sequence[np.ndarray], model: torch.nn.Module, batch_size: int = 4,
                   num_flow_updates: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Forward flows f_i->i+1 of consecutive frames by RAFT, with forward-backward valid masks.

    `frames`: (H, W, 3) uint8 RGB, at least 2. Returns flows (N, H, W, 2) float32 and valid (N, H, W) bool,
    N = len(frames) - 1. Forward and backward flows of each pair are estimated in one batch.
    """
    if len(frames) < 2:
        raise ValueError(f"frames: need at least 2 frames for flows, got {len(frames)}")
    n = len(frames) - 1
    pairs = [(i, i + 1) for i in range(n)] + [(i + 1, i) for i in range(n)]
    order = [k for i in range(n) for k in (i, n + i)]  # a pair's forward and backward side by side
    flows = np.empty((2 * n, *frames[0].shape[:2], 2), np.float32)
    flows[order] = raft_flows(frames, model, [pairs[k] for k in order], batch_size, num_flow_updates)
    return flows[:n], forward_backward_valid(flows[:n], flows[n:])


def load_depth_estimator(folder: Path, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, object]:
    """A transformers monocular depth model and its image processor from a local `save_pretrained` folder
    (`local_files_only`); missing -> `MissingWeightsError` naming the folder."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    folder = Path(folder)
    first_existing("monocular depth estimator (transformers folder, e.g. Intel/dpt-hybrid-midas)",
                   [folder / "config.json"])
    model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True)
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    return model.to(device, dtype).eval().requires_grad_(False), processor


def predicts_disparity(model: torch.nn.Module) -> bool:
    """True when a transformers depth model predicts relative inverse depth (DPT/MiDaS, Depth Anything
    relative), False for metric depth (GLPN, ZoeDepth, Depth Pro, Depth Anything metric)."""
    config = model.config
    return (getattr(config, "depth_estimation_type", "relative") != "metric"
            and config.model_type not in METRIC_DEPTH_MODEL_TYPES)


@torch.no_grad()
def estimate_depth(frames: Sequence[np.ndarray], model: torch.nn.Module, processor, batch_size: int = 4
                   ) -> list[np.ndarray]:
    """Relative inverse depth (disparity: larger = nearer, up to scale and shift) per frame, (H, W) float32.

    `predicted_depth` is resized back to the frame size (bicubic, as the processors' post-processing).
    DPT/MiDaS and relative Depth Anything already predict disparity; metric models' depth is inverted.
    Feed the maps to `depth_to_image(..., disparity=True)`. Processors that pad (ZoeDepth) are not undone:
    use a DPT/MiDaS (the paper's estimator) or Depth Anything model.
    """
    device, dtype = model_device(model)
    invert = not predicts_disparity(model)
    maps = []
    for start in range(0, len(frames), batch_size):
        chunk = list(frames[start:start + batch_size])
        inputs = processor(images=chunk, return_tensors="pt")
        predicted = model(pixel_values=inputs["pixel_values"].to(device, dtype)).predicted_depth.float()
        predicted = F.interpolate(predicted[:, None], size=chunk[0].shape[:2], mode="bicubic", align_corners=False)
        for prediction in predicted[:, 0].cpu().numpy():
            maps.append((1.0 / np.maximum(prediction, 1e-6) if invert else prediction).astype(np.float32))
    return maps


def clip_from_video(frames: Sequence[np.ndarray], raft: torch.nn.Module, depth_model: torch.nn.Module,
                    depth_processor, edge_detector: EdgeDetector, prompt: str = DEFAULT_PROMPT) -> TrainingClip:
    """A training clip from real frames: RAFT flows with forward-backward masks, HED-S of estimated depth."""
    frames = [np.ascontiguousarray(f) for f in frames]
    flows, valid = estimate_flows(frames, raft)
    structure = [edge_detector(depth_to_image(d, disparity=True))
                 for d in estimate_depth(frames, depth_model, depth_processor)]
    return TrainingClip(frames, flows, valid, structure, prompt)


# --- DL3DV-style video folders ----------------------------------------------------------------------------

def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _frame_folders(scene: Path) -> list[Path]:
    """The `images*` subfolders of a scene that hold images."""
    return [d for d in sorted(scene.glob("images*")) if d.is_dir() and _image_files(d)]


def video_folders(root: Path) -> list[Path]:
    """Video (scene) folders below `root` (itself included), sorted: folders with an `images*/` folder of
    frames, or with frame images directly. A video folder's own subfolders are not searched further."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: video root folder not found")
    found = []
    for folder, subdirs, _ in os.walk(root):
        folder = Path(folder)
        subdirs.sort()
        if _frame_folders(folder) or _image_files(folder):
            found.append(folder)
            subdirs.clear()
    return sorted(found)


def _pick_frame_folder(scene: Path, size: tuple[int, int] | None) -> Path:
    """The images* folder with the smallest frames still at least `size` (else the largest frames)."""
    folders = _frame_folders(scene)
    if not folders:
        return scene
    sized = []
    for d in folders:
        with Image.open(_image_files(d)[0]) as image:
            sized.append((image.size, d))
    sized.sort(key=lambda item: item[0][0] * item[0][1])
    if size is not None:
        for (w, h), d in sized:
            if w >= size[0] and h >= size[1]:
                return d
    return sized[-1][1]


def read_video_frames(folder: Path, num_frames: int, stride: int = 1, size: tuple[int, int] | None = None,
                      start: int = 0) -> list[np.ndarray]:
    """Frames start, start + stride, ... (`num_frames` of them) of a video folder as (H, W, 3) uint8 RGB.

    `size` = (W, H): centre-crop to its aspect ratio, then resize (Lanczos); None keeps the frames' size.
    Raises ValueError when the video has too few frames.
    """
    folder = Path(folder)
    files = _image_files(_pick_frame_folder(folder, size))
    picked = files[start::stride][:num_frames]
    if len(picked) < num_frames:
        raise ValueError(f"{folder}: {len(files)} frames, need {num_frames} from frame {start} with stride {stride}")
    return [_read_fitted(p, size) for p in picked]


def _read_fitted(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if size is not None and image.size != tuple(size):
        w, h = image.size
        crop_w, crop_h = min(w, round(h * size[0] / size[1])), min(h, round(w * size[1] / size[0]))
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        image = image.resize(tuple(size), Image.Resampling.LANCZOS, box=(left, top, left + crop_w, top + crop_h))
    return np.asarray(image)
