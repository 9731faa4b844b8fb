"""GGI training clips (paper Sec. 3.4, Fig. 9): frames, forward flows with valid masks, HED-S structure maps.

The paper trains GGI on DL3DV-10K videos of static scenes: flows by RAFT drive the warped noise, and the
structure maps are HED of a monocular depth estimate ("HED-S"), so that they carry no texture, like the
edges of coarse geometry seen at inference. Two sources share the output (`vf3d.ggi.training.TrainingClip`):

- `tiny` profile, `clip_from_render`: a benchmark shot rendered with random textures (Cycles), with the exact
  flows and planar depth of `vf3d.preprocess.guidance.preprocess`; structure = edge detector on
  `depth_to_image(depth)`.
- `full` profile, `clip_from_video`: real frames, flows by torchvision's RAFT with a forward-backward check
  (`vf3d.models.raft.estimate_flows`), structure = HED of a depth picture: the official one by controlnet_aux's
  MiDaS annotator (`vf3d.models.midas.MidasDepthAnnotator`), or any transformers depth model
  (`depth_pictures_by_estimator`: `depth_to_image` of its disparity, e.g. Depth Anything).

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
or `raft_small_C_T_V2-01064c6d.pth`, or a folder holding it) for `vf3d.models.raft.load_raft`;
`dpt_hybrid-midas-501f0c75.pt` (lllyasviel/Annotators) for the MiDaS annotator, or a transformers depth model
folder (`save_pretrained` layout) for `vf3d.models.depth_estimator.load_depth_estimator`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vf3d.ggi.training import TrainingClip
from vf3d.models.depth_estimator import estimate_depth, load_depth_estimator
from vf3d.models.hed import EdgeDetector
from vf3d.models.midas import MidasDepthAnnotator
from vf3d.models.raft import estimate_flows

DEFAULT_PROMPT = "a video of a static scene"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

DepthPictures = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
"""Frames -> the (H, W) uint8 depth pictures HED sees for HED-S (near = bright)."""


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
    scene); flows are the forward flows f_i->i+1 of `vf3d.preprocess.guidance.preprocess` across its segments.
    """
    from vf3d.preprocess.blender.textured import load_frames, render_textured_clip
    from vf3d.preprocess.guidance import preprocess

    if num_frames < 2:
        raise ValueError(f"num_frames: a clip needs at least 2 frames, got {num_frames}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source, trajectory = _trimmed_shot(Path(source), None if trajectory is None else Path(trajectory),
                                       num_frames, workdir)
    frames_dir, guidance_dir = workdir / "frames", workdir / "guidance"
    shutil.rmtree(frames_dir, ignore_errors=True)
    render_w, render_h = _render_size_covering(trajectory, width, height)
    render_textured_clip(source, frames_dir, render_w, render_h, seed, samples=samples, trajectory=trajectory)
    preprocess(source, guidance_dir, render_w, render_h, trajectory=trajectory)
    frames = load_frames(frames_dir)[:num_frames]
    n = len(frames)
    forward, valid = [], []
    for segment in sorted((guidance_dir / "flows").glob("seg*.npz")):
        with np.load(segment) as data:
            forward.append(data["forward"])
            valid.append(data["forward_valid"])
    flows, valid = np.concatenate(forward)[: n - 1].astype(np.float32), np.concatenate(valid)[: n - 1].astype(bool)
    depth = np.load(guidance_dir / "depth.npy")[:n]
    # a trajectory of another aspect ratio is rendered larger and centre-cropped: a crop shifts both views of a
    # flow alike, so flows keep their values; those leaving the crop become invalid
    left, top = (render_w - width) // 2, (render_h - height) // 2
    rows, cols = slice(top, top + height), slice(left, left + width)
    flows, valid, depth = flows[:, rows, cols], valid[:, rows, cols], depth[:, rows, cols]
    x, y = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    valid &= ((x + flows[..., 0] >= 0) & (x + flows[..., 0] < width) & (y + flows[..., 1] >= 0)
              & (y + flows[..., 1] < height))
    structure = [edge_detector(depth_to_image(d)) for d in depth]
    return TrainingClip([f[rows, cols] for f in frames], flows, valid, structure, prompt)


def _render_size_covering(trajectory: Path | None, width: int, height: int) -> tuple[int, int]:
    """The smallest render size with the trajectory's exact aspect ratio that covers width x height (a `.blend`
    renders at any size: width x height itself)."""
    if trajectory is None:
        return width, height
    data = json.loads(trajectory.read_text())
    aspect_w, aspect_h = int(data["width"]), int(data["height"])
    unit = math.gcd(aspect_w, aspect_h)
    aspect_w, aspect_h = aspect_w // unit, aspect_h // unit
    n = max(-(-width // aspect_w), -(-height // aspect_h))
    return aspect_w * n, aspect_h * n


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

    from vf3d.preprocess.blender import quiet_stdout
    from vf3d.preprocess.blender.scene_io import disable_autoexec

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

def depth_pictures_by_estimator(model: torch.nn.Module, processor) -> DepthPictures:
    """HED-S depth pictures from a transformers depth model: `depth_to_image` of its disparity per frame."""
    return lambda frames: [depth_to_image(d, disparity=True) for d in estimate_depth(frames, model, processor)]


def hed_s_depth_pictures(source: Path, device: torch.device | str = "cpu") -> DepthPictures:
    """HED-S depth pictures from `source`: a transformers depth model folder (it has a config.json), else the
    official MiDaS annotator file, or a folder holding it (`vf3d.models.midas`)."""
    source = Path(source)
    if (source / "config.json").is_file():
        return depth_pictures_by_estimator(*load_depth_estimator(source, device=device))
    return MidasDepthAnnotator.from_file(source, device)


def clip_from_video(frames: Sequence[np.ndarray], raft: torch.nn.Module, depth_pictures: DepthPictures,
                    edge_detector: EdgeDetector, prompt: str = DEFAULT_PROMPT) -> TrainingClip:
    """A training clip from real frames: RAFT flows with forward-backward masks, HED-S = HED of each frame's
    depth picture (`vf3d.models.midas.MidasDepthAnnotator` in the paper, or `depth_pictures_by_estimator`)."""
    frames = [np.ascontiguousarray(f) for f in frames]
    flows, valid = estimate_flows(frames, raft)
    structure = [edge_detector(picture) for picture in depth_pictures(frames)]
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


ZOOM_CROP_SCALE = 1.1
"""The official training's "adaptive resize" (`training_ggi/mydataset_depthhed_mask.py`): scale each clip so
that it covers the training size times 1.1, then take one random crop of that size for all its frames."""


def read_video_frames(folder: Path, num_frames: int, stride: int = 1, size: tuple[int, int] | None = None,
                      start: int = 0, crop_seed: int | None = None) -> list[np.ndarray]:
    """Frames start, start + stride, ... (`num_frames` of them) of a video folder as (H, W, 3) uint8 RGB.

    `size` = (W, H); None keeps the frames' size. `crop_seed` None: centre-crop to the aspect ratio, then
    resize (Lanczos); an int: the official random zoom crop (`ZOOM_CROP_SCALE`, bilinear), one crop per clip
    drawn from that seed. Raises ValueError when the video has too few frames.
    """
    folder = Path(folder)
    files = _image_files(_pick_frame_folder(folder, size))
    picked = files[start::stride][:num_frames]
    if len(picked) < num_frames:
        raise ValueError(f"{folder}: {len(files)} frames, need {num_frames} from frame {start} with stride {stride}")
    if size is None:
        return [_read_rgb(p) for p in picked]
    with Image.open(picked[0]) as first:
        box, resample = _crop_box(first.size, size, crop_seed)
    return [np.asarray(image if image.size == tuple(size) and crop_seed is None
                       else image.resize(tuple(size), resample, box=box)) for image in map(_read_image, picked)]


def _read_image(path: Path) -> Image.Image:
    with Image.open(path) as opened:
        return opened.convert("RGB")


def _read_rgb(path: Path) -> np.ndarray:
    return np.asarray(_read_image(path))


def _crop_box(source: tuple[int, int], size: tuple[int, int], crop_seed: int | None
              ) -> tuple[tuple[float, float, float, float], Image.Resampling]:
    """The source-pixel box that becomes the (W, H) frame, and the resampling filter."""
    w, h = source
    if crop_seed is None:
        crop_w, crop_h = min(w, round(h * size[0] / size[1])), min(h, round(w * size[1] / size[0]))
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        return (left, top, left + crop_w, top + crop_h), Image.Resampling.LANCZOS
    scale = max(size[0] / w, size[1] / h)
    zoomed_w, zoomed_h = int(scale * w * ZOOM_CROP_SCALE), int(scale * h * ZOOM_CROP_SCALE)
    rng = np.random.default_rng(crop_seed)
    left, top = int(rng.integers(0, zoomed_w - size[0] + 1)), int(rng.integers(0, zoomed_h - size[1] + 1))
    sx, sy = w / zoomed_w, h / zoomed_h
    return (left * sx, top * sy, (left + size[0]) * sx, (top + size[1]) * sy), Image.Resampling.BILINEAR
