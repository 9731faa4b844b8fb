"""Preprocessing (paper Sec. 3.1): render a shot's structural guidance and flows with Blender.

Output folder layout (documented in the README)::

    meta.json                 width, height, intrinsics, per-frame camera-to-world (OpenCV axes), segments,
                              `hed_input`: what the edge detector reads per role (`vf3d.preprocess.hed_input`)
    edges/{frame:05d}.png     line art (our geometric edges), uint8, white edges on black
    hed_input/{frame:05d}.png the edge detector's input for every frame (GGI): normal matcap + Line Art strokes,
                              (H, W, 3) uint8, at `EdgeSettings.frame_scale` x the video size (`paper`: 1x)
    hed_input_anchors/{frame:05d}.png   the same for the anchor frames (SAG) at `anchor_scale` x (`paper`: 1.5x)
    depth.npy                 (F, H, W) float32 planar depth in scene units, background = inf
    flows/seg{k:03d}.npz      forward (N, H, W, 2) f_i->i+1, forward_valid (N, H, W),
                              end_to_start (H, W, 2) f_N->0, end_to_start_valid (H, W)

The folder is written under a temporary name and renamed when complete (`vf3d.common.atomic`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vf3d.common.atomic import atomic_dir, check_replaceable
from vf3d.common.errors import VF3DInputError
from vf3d.common.interrupts import checkpoint, stop_on_signals
from vf3d.common.limits import available_memory_bytes
from vf3d.preprocess.camera import Intrinsics
from vf3d.preprocess.depth import planar_depth
from vf3d.preprocess.edges import EdgeSettings, edge_map
from vf3d.preprocess.external_references import external_references
from vf3d.preprocess.flows import reprojection_flow
from vf3d.preprocess.hed_input import hed_input_image
from vf3d.preprocess.passes import GBuffer
from vf3d.preprocess.trajectory import Trajectory

DEFAULT_WIDTH, DEFAULT_HEIGHT = 720, 480
META_VERSION = 1
BYTES_PER_PIXEL_IN_FLIGHT = 2 * 200
"""Upper estimate per pixel of the frames in flight (two: one rendering, one post-processed): EXR channels,
G-buffer arrays, edge and flow temporaries. Whole runs peaked at 0.76-0.92 GiB at 720x480 x 46 frames."""


@dataclass
class GuidanceStats:
    """What a preprocessing run measured; shown as asset metadata, not written into the outputs."""

    num_frames: int
    segments: list[tuple[int, int]]
    edge_fraction: list[float]  # per frame, fraction of edge pixels
    forward_valid_fraction: list[float]  # per consecutive pair, valid / geometry pixels of the first frame
    end_to_start_valid_fraction: list[float]  # per segment
    render_seconds: float = 0.0
    edge_seconds: float = 0.0  # edges + depth + PNG, in the worker thread (overlaps rendering)
    flow_seconds: float = 0.0  # reprojection flows, in the worker thread (overlaps rendering)
    hed_input_seconds: float = 0.0  # HED inputs: composites (worker thread) and the renders at other sizes
    total_seconds: float = 0.0


@dataclass(frozen=True)
class ShotGeometry:
    """A guidance folder's exact geometry: planar depth (F, H, W; inf = background), OpenCV camera-to-world
    poses (F, 4, 4) and intrinsics; what every mesh flow f_i->j is computed from (`flows.depth_flow`)."""

    depth: np.ndarray
    c2w: np.ndarray
    intrinsics: Intrinsics

    @classmethod
    def load(cls, guidance_dir: Path) -> ShotGeometry:
        meta = json.loads((Path(guidance_dir) / "meta.json").read_text())
        k = meta["intrinsics"]
        return cls(np.load(Path(guidance_dir) / "depth.npy"), np.array(meta["camera_to_world"]),
                   Intrinsics(meta["width"], meta["height"], k["fx"], k["fy"], k["cx"], k["cy"]))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shot_description(traj: Trajectory, source: Path, trajectory_file: Path | None,
                     library_paths: Sequence[str | Path] = ()) -> dict:
    """What defines a shot: image size, intrinsics, per-frame poses, segments, and the input files' hashes.

    `libraries` lists every file the shot references (`vf3d.preprocess.external_references`: linked libraries,
    glTF buffers and images, OBJ material libraries and textures), so that editing one changes the shot.
    """
    references = external_references(source, library_paths)
    return {
        "version": META_VERSION,
        "width": traj.intrinsics.width,
        "height": traj.intrinsics.height,
        "intrinsics": {k: getattr(traj.intrinsics, k) for k in ("fx", "fy", "cx", "cy")},
        "axes": "opencv (x right, y down, z forward)",
        "world": "blender (z up, scene units)",
        "num_frames": traj.num_frames,
        "source_frames": list(traj.source_frames),
        "camera_to_world": traj.c2w.tolist(),
        "segments": [list(s) for s in traj.segments()],
        "source": {"file": source.name, "sha256": file_sha256(source)},
        "trajectory": None if trajectory_file is None else {"file": trajectory_file.name, "sha256": file_sha256(trajectory_file)},
        "libraries": [{"file": ref.stored, "sha256": file_sha256(ref.path)} for ref in references],
    }


def describe_shot(source: str | Path, width: int, height: int, trajectory: str | Path | None = None,
                  library_paths: Sequence[str | Path] = ()) -> dict:
    """Open a shot with Blender (no render) and return its `shot_description`; validates every input."""
    from vf3d.preprocess.blender.scene_io import load_shot

    trajectory = None if trajectory is None else Path(trajectory)
    return shot_description(load_shot(source, width, height, trajectory, library_paths), Path(source), trajectory,
                            library_paths)


def check_memory(source: Path, width: int, height: int, num_frames: int, segment_frames: int,
                 largest_scale: float = 1.0) -> None:
    """Refuse a render whose buffers would not fit in this machine's available memory (one line, before
    rendering): depth of every frame, a segment's flows and masks, and per-frame G-buffers in flight (at up to
    `largest_scale` x the size, for the HED inputs)."""
    available = available_memory_bytes()
    in_flight = BYTES_PER_PIXEL_IN_FLIGHT * max(1.0, largest_scale) ** 2
    needed = int(width * height * (4 * num_frames + 9 * 2 * segment_frames + in_flight))
    if available is not None and needed > available:
        raise VF3DInputError(source, f"rendering {num_frames} frames at {width}x{height} needs about "
                                     f"{needed / 2**30:.1f} GiB of memory; {available / 2**30:.1f} GiB is available "
                                     "(render smaller, or a shorter shot)")


def _geometry_fraction(valid: np.ndarray, background: np.ndarray) -> float:
    geometry = int((~background).sum())
    return float(valid.sum() / geometry) if geometry else 0.0


def preprocess(
    source: str | Path,
    out_dir: str | Path,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    trajectory: str | Path | None = None,
    edge_settings: EdgeSettings = EdgeSettings(),
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    library_paths: Sequence[str | Path] = (),
) -> GuidanceStats:
    """Render edges, depth and flows of a shot into `out_dir` (replaced atomically when complete).

    Args:
        source: `.blend` with an animated scene camera, or `.glb`/`.gltf`/`.obj` with `trajectory`.
        out_dir: output folder (layout in the module docstring).
        width, height: render size (paper: 720x480).
        trajectory: trajectory JSON for mesh files (`vf3d.preprocess.trajectory`).
        edge_settings: edge detection settings and what the edge detector will read (`EDGE_PRESETS`).
        threads: Cycles render threads (None = all cores).
        progress: called with (frames done, total frames).
        library_paths: folders besides the shot's own from which the shot may read the files it references.

    Every input is checked before rendering: the output must be new, empty or an earlier vf3d output that
    holds no input (`vf3d.common.atomic.check_replaceable`), the size and memory within limits, every file the
    shot references (libraries, glTF buffers and images, OBJ materials and textures) inside its folder or
    `library_paths`.
    """
    # bpy is imported here so the numeric modules stay importable (and testable) without Blender loaded.
    import bpy

    from vf3d.preprocess.blender.render import configure_render, render_frame
    from vf3d.preprocess.blender.scene_io import load_shot

    source, out_dir = Path(source), Path(out_dir)
    trajectory = None if trajectory is None else Path(trajectory)
    inputs = (source, *([trajectory] if trajectory else []))
    check_replaceable(out_dir, protect=inputs)
    started = time.perf_counter()
    traj = load_shot(source, width, height, trajectory, library_paths)
    check_memory(source, width, height, traj.num_frames, max(b - a + 1 for a, b in traj.segments()),
                 max(edge_settings.anchor_scale, edge_settings.frame_scale))
    scene = bpy.context.scene
    configure_render(scene, width, height, threads)
    stats = GuidanceStats(traj.num_frames, traj.segments(), [], [], [])
    with atomic_dir(out_dir, protect=inputs) as tmp:
        scratch = tmp / ".scratch"
        scratch.mkdir()
        frames = _FrameProcessor(traj, tmp, edge_settings, stats)
        # Numpy post-processing of frame i runs in a worker thread while Cycles renders frame i+1
        # (Blender releases the GIL while rendering); at most two frames are in flight.
        with ThreadPoolExecutor(max_workers=1) as worker, stop_on_signals():
            pending: list[Future] = []
            for i in range(traj.num_frames):
                checkpoint()  # Ctrl-C or SIGTERM during the last render: stop here, temporaries removed
                t0 = time.perf_counter()
                gbuffer = render_frame(scene, traj, i, scratch)
                stats.render_seconds += time.perf_counter() - t0
                pending.append(worker.submit(frames.process, i, gbuffer))
                if len(pending) > 1:
                    pending.pop(0).result()
                if progress:
                    progress(i + 1, traj.num_frames)
            for future in pending:
                future.result()
            hed_inputs = _render_hed_inputs(scene, traj, tmp, scratch, edge_settings, stats)
        scratch.rmdir()
        np.save(tmp / "depth.npy", frames.depth)
        meta = {**shot_description(traj, source, trajectory, library_paths), "edges": asdict(edge_settings),
                "hed_input": hed_inputs}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    stats.total_seconds = time.perf_counter() - started
    return stats


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The render size at `scale` x (width, height): 1080x720 for 720x480 at 1.5."""
    return round(width * scale), round(height * scale)


def _write_hed_input(g: GBuffer, depth: np.ndarray, lines: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics,
                     settings: EdgeSettings, path: Path) -> None:
    if settings.hed_input == "matcap_lines":
        rgb = hed_input_image(g, depth, lines > 0, c2w, intrinsics, settings.stroke_width)
        cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])  # 2x faster than PIL's encoder
    else:
        Image.fromarray(lines).save(path, compress_level=1)


def _render_hed_inputs(scene, traj: Trajectory, out: Path, scratch: Path, settings: EdgeSettings,
                       stats: GuidanceStats) -> dict:
    """Render the HED inputs that the video-size pass did not give (every frame at `frame_scale`, the anchor
    frames at `anchor_scale`) and return `meta.json["hed_input"]`."""
    from vf3d.preprocess.blender.render import render_frame, set_resolution

    w, h = traj.intrinsics.width, traj.intrinsics.height
    matcap = settings.hed_input == "matcap_lines"
    frames_entry = {"folder": "hed_input" if matcap or settings.frame_scale != 1 else "edges", "width": w, "height": h}
    # The anchors: the first frame of the shot and the last of every segment (`vf3d.sag.anchors.anchor_frames`).
    anchor_frames = [stats.segments[0][0]] + [end for _, end in stats.segments]
    passes = []
    if settings.frame_scale != 1:
        frames_entry["width"], frames_entry["height"] = scaled_size(w, h, settings.frame_scale)
        passes.append(("hed_input", list(range(traj.num_frames)), frames_entry))
    anchors_entry = dict(frames_entry)
    if settings.anchor_scale != settings.frame_scale:
        width, height = scaled_size(w, h, settings.anchor_scale)
        anchors_entry = {"folder": "hed_input_anchors", "width": width, "height": height, "frames": anchor_frames}
        passes.append(("hed_input_anchors", anchor_frames, anchors_entry))
    for folder, frames, entry in passes:
        (out / folder).mkdir(exist_ok=True)
        intrinsics = traj.intrinsics.scaled_to(entry["width"], entry["height"])
        set_resolution(scene, entry["width"], entry["height"])

        def post(i: int, g: GBuffer, folder: str = folder, intrinsics: Intrinsics = intrinsics) -> None:
            t0 = time.perf_counter()
            depth = planar_depth(g.position, g.background, traj.c2w[i])
            lines = edge_map(g, depth, settings)
            _write_hed_input(g, depth, lines, traj.c2w[i], intrinsics, settings, out / folder / f"{i:05d}.png")
            stats.hed_input_seconds += time.perf_counter() - t0

        with ThreadPoolExecutor(max_workers=1) as worker:  # post-process frame i while frame i+1 renders
            pending: list[Future] = []
            for i in frames:
                checkpoint()
                t0 = time.perf_counter()
                gbuffer = render_frame(scene, traj, i, scratch)
                stats.hed_input_seconds += time.perf_counter() - t0
                pending.append(worker.submit(post, i, gbuffer))
                if len(pending) > 1:
                    pending.pop(0).result()
            for future in pending:
                future.result()
    set_resolution(scene, w, h)
    detect = max(frames_entry["height"], anchors_entry["height"]) if matcap else None
    return {"kind": settings.hed_input, "detect_resolution": detect, "frames": frames_entry, "anchors": anchors_entry}


class _FrameProcessor:
    """Turns each rendered frame into its edge map, depth, flows and (at the video size) HED input, in frame order."""

    def __init__(self, traj: Trajectory, out: Path, edge_settings: EdgeSettings, stats: GuidanceStats):
        self.traj, self.out, self.edge_settings, self.stats = traj, out, edge_settings, stats
        (out / "edges").mkdir()
        (out / "flows").mkdir()
        self.hed_inputs = edge_settings.hed_input == "matcap_lines" and edge_settings.frame_scale == 1
        if self.hed_inputs:
            (out / "hed_input").mkdir()
        self.depth = np.empty((traj.num_frames, traj.intrinsics.height, traj.intrinsics.width), np.float32)
        self.segment, self.forward, self.forward_valid = 0, [], []
        self.previous: GBuffer | None = None

    def _flow(self, g: GBuffer, target: int) -> tuple[np.ndarray, np.ndarray, float]:
        t0 = time.perf_counter()
        flow, valid = reprojection_flow(g.position, g.background, self.traj.c2w[target], self.traj.intrinsics,
                                        self.depth[target])
        self.stats.flow_seconds += time.perf_counter() - t0
        return flow, valid, _geometry_fraction(valid, g.background)

    def process(self, i: int, g: GBuffer) -> None:
        t0 = time.perf_counter()
        self.depth[i] = planar_depth(g.position, g.background, self.traj.c2w[i])
        edges = edge_map(g, self.depth[i], self.edge_settings)
        Image.fromarray(edges).save(self.out / "edges" / f"{i:05d}.png", compress_level=1)
        self.stats.edge_fraction.append(float((edges > 0).mean()))
        self.stats.edge_seconds += time.perf_counter() - t0
        if self.hed_inputs:
            t0 = time.perf_counter()
            _write_hed_input(g, self.depth[i], edges, self.traj.c2w[i], self.traj.intrinsics, self.edge_settings,
                             self.out / "hed_input" / f"{i:05d}.png")
            self.stats.hed_input_seconds += time.perf_counter() - t0
        if self.previous is not None:
            flow, valid, fraction = self._flow(self.previous, i)
            self.forward.append(flow)
            self.forward_valid.append(valid)
            self.stats.forward_valid_fraction.append(fraction)
        start, end = self.stats.segments[self.segment]
        if i == end:
            back, back_valid, fraction = self._flow(g, start)
            self.stats.end_to_start_valid_fraction.append(fraction)
            np.savez(self.out / "flows" / f"seg{self.segment:03d}.npz", forward=np.stack(self.forward),
                     forward_valid=np.stack(self.forward_valid), end_to_start=back, end_to_start_valid=back_valid)
            self.segment, self.forward, self.forward_valid = self.segment + 1, [], []
        self.previous = g
