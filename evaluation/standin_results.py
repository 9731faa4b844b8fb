"""Stand-in benchmark results: metric records and tiny media in the artifacts folder's layout.

For measuring and testing the results page (`evaluation.results_page`) at the full benchmark's size (16 scenes x
3 styles x 5 methods) without generating 240 videos: each method's video is a small H.264 mp4 of a coloured bar
sweeping across (one encode per method, copied per shot), each shot has two anchors and each scene a sequence of
edge maps whose line moves with the frame, and each record holds seeded random metric values under the `tiny`
profile, so the report marks every row as meaningless. Every folder is written through `vf3d.common.atomic`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from evaluation.metrics import METRICS, METRICS_CODE_VERSION
from vf3d.common.atomic import atomic_dir
from vf3d.common.video_io import write_mp4

FRAMES = 46
FPS = 8.0
SIZE = (64, 48)
METRIC_RANGES = {"psnr": (10, 20), "ssim": (0.3, 0.6), "lpips": (0.2, 0.4), "psnr_d": (12, 21), "clip_a": (5, 7),
                 "musiq": (45, 70), "clip_i": (0.75, 0.85), "subject_consistency": (0.8, 0.9),
                 "background_consistency": (0.88, 0.95), "flicker_mae": (1, 8), "flicker_psnr": (25, 40)}


def _bar_video(hue: int, frames: int) -> list[np.ndarray]:
    """A dark bar sweeping left to right over a background of the method's own colour: in sync or not at a glance."""
    width, height = SIZE
    colour = np.array(Image.new("HSV", (1, 1), (hue, 160, 200)).convert("RGB")).reshape(3)
    video = []
    for i in range(frames):
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = colour
        x = round(i * (width - 6) / max(frames - 1, 1))
        frame[:, x:x + 6] = 30
        video.append(frame)
    return video


def _edge_map(i: int, frames: int) -> Image.Image:
    width, height = SIZE
    edges = np.zeros((height, width), np.uint8)
    edges[[4, height - 5], :] = 255
    edges[:, round(i * (width - 1) / max(frames - 1, 1))] = 255
    return Image.fromarray(edges)


def write_standin_results(root: Path, scenes: Sequence[tuple[str, str]], styles: Sequence[str],
                          methods: Sequence[str], video_folder: Callable[[str], str], frames: int = FRAMES,
                          seed: int = 0) -> list[dict]:
    """Write stand-in media and `metrics.json` records for every scene x style x method under `root` (an
    artifacts folder); `scenes` are (key, category) pairs, `video_folder` names a method's video asset. Returns
    the records. Metrics folders are named as the metrics assets name them (`metrics`, `metrics_<method>`)."""
    rng = np.random.default_rng(seed)
    encoded = root / ".standin-videos"
    with atomic_dir(encoded) as tmp:
        for index, method in enumerate(methods):
            write_mp4(_bar_video(int(255 * index / max(len(methods), 1)), frames), tmp / f"{method}.mp4", fps=FPS)
    for scene, _ in scenes:
        with atomic_dir(root / "guidance" / scene) as tmp:
            (tmp / "edges").mkdir()
            for i in range(frames):
                _edge_map(i, frames).save(tmp / "edges" / f"{i:05d}.png")
    records = []
    for scene, category in scenes:
        for style in styles:
            partition = f"{scene}__{style}"
            with atomic_dir(root / "anchors" / partition) as tmp:
                (tmp / "anchors").mkdir()
                for frame, shade in ((0, 60), (frames - 1, 190)):
                    Image.new("RGB", SIZE, (shade, 120, 255 - shade)).save(tmp / "anchors" / f"{frame:05d}.png")
            for method in methods:
                with atomic_dir(root / video_folder(method) / partition) as tmp:
                    shutil.copyfile(encoded / f"{method}.mp4", tmp / "video.mp4")
                    (tmp / "video.json").write_text(json.dumps({"method": method, "profile": "tiny",
                                                                "frames": frames, "fps": FPS}))
                record = {"scene": scene, "style": style, "category": category, "method": method,
                          "generation_profile": "tiny", "metric_profile": "tiny", "aesthetic_head": "laion_linear",
                          "psnr_d_background": "exclude", "model_ids": {"stand-in": "random values"},
                          "metrics_code_version": METRICS_CODE_VERSION,
                          **{m: float(rng.uniform(*METRIC_RANGES[m])) for m in METRICS}}
                metrics_folder = "metrics" if method == "ggi" else f"metrics_{method}"
                with atomic_dir(root / metrics_folder / partition) as tmp:
                    (tmp / "metrics.json").write_text(json.dumps(record, indent=1))
                records.append(record)
    return records
