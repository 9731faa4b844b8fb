"""Asset metadata helpers: pictures inline in the UI, content-hash data versions, the videos every method writes."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from dagster import DataVersion, MaterializeResult, MetadataValue
from PIL import Image

from vf3d.common.atomic import atomic_dir
from vf3d.common.hashing import content_hash
from vf3d.common.video_io import write_mp4
from vf3d.common.visualize import animated_gif, contact_sheet, png_bytes
from vf3d.baselines.methods import METHODS


def image_markdown(image: np.ndarray, title: str) -> MetadataValue:
    """An image embedded in markdown metadata (a data URI), shown as a thumbnail in the asset's page."""
    encoded = base64.b64encode(png_bytes(image)).decode()
    return MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def animation_markdown(frames: Sequence[np.ndarray], fps: float, title: str) -> MetadataValue:
    """Every frame as a small looping animation embedded in markdown metadata: the video plays in the UI."""
    encoded = base64.b64encode(animated_gif(frames, fps)).decode()
    return MetadataValue.md(f"![{title}](data:image/gif;base64,{encoded})")


def method_display(key: str) -> str:
    return METHODS[key].display


def save_method_video(out: Path, frames: Sequence[np.ndarray], method_key: str, profile: str, fps: float,
                      device: Mapping, extra: Mapping | None = None, edges_dir: Path | None = None
                      ) -> MaterializeResult:
    """Write a method's video folder atomically (frames/*.png, video.mp4, video.json with the method and the
    generation profile the metrics record) and return its materialization: a looping preview of every frame,
    a contact sheet, and (with the guidance's `edges_dir`) the edge map beside the frame for four frames."""
    info = {"method": method_key, "method_label": method_display(method_key), "profile": profile,
            "frames": len(frames), "fps": fps, "device": dict(device), **dict(extra or {})}
    with atomic_dir(out) as tmp:
        (tmp / "frames").mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(tmp / "frames" / f"{i:05d}.png")
        write_mp4(frames, tmp / "video.mp4", fps=fps)
        (tmp / "video.json").write_text(json.dumps(info))
    picks = np.linspace(0, len(frames) - 1, min(12, len(frames))).round().astype(int)
    height, width = frames[0].shape[:2]
    beside = {}
    if edges_dir is not None:
        pairs = []
        for i in np.linspace(0, len(frames) - 1, min(4, len(frames))).round().astype(int):
            pairs += [frames[i], np.asarray(Image.open(edges_dir / f"{i:05d}.png").convert("RGB"))]
        beside["frames_and_edges"] = image_markdown(contact_sheet(pairs, columns=2, thumb_width=200),
                                                    "frames (left) and their edge maps (right)")
    return MaterializeResult(data_version=DataVersion(content_hash(out)), metadata={
        "path": MetadataValue.path(str(out / "video.mp4")), "profile": profile, "method": method_key,
        "method_label": info["method_label"], "device": MetadataValue.json(dict(device)), "frames": len(frames),
        "fps": fps, "resolution": f"{width}x{height}", **{k: v for k, v in (extra or {}).items()},
        "preview": animation_markdown(frames, fps, "the video, every frame, looping"), **beside,
        "contact_sheet": image_markdown(contact_sheet([frames[i] for i in picks], columns=6, thumb_width=160),
                                        "video frames")})
