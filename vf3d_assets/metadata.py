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
from vf3d.common.visualize import contact_sheet, png_bytes
from vf3d.baselines.methods import METHODS


def image_markdown(image: np.ndarray, title: str) -> MetadataValue:
    """An image embedded in markdown metadata (a data URI), shown as a thumbnail in the asset's page."""
    encoded = base64.b64encode(png_bytes(image)).decode()
    return MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def method_display(key: str) -> str:
    return METHODS[key].display


def save_method_video(out: Path, frames: Sequence[np.ndarray], method_key: str, profile: str, fps: float,
                      device: Mapping, extra: Mapping | None = None) -> MaterializeResult:
    """Write a method's video folder atomically (frames/*.png, video.mp4, video.json with the method and the
    generation profile the metrics record) and return its materialization (metadata and a contact sheet)."""
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
    return MaterializeResult(data_version=DataVersion(content_hash(out)), metadata={
        "path": MetadataValue.path(str(out / "video.mp4")), "profile": profile, "method": method_key,
        "method_label": info["method_label"], "device": MetadataValue.json(dict(device)), "frames": len(frames),
        "fps": fps, "resolution": f"{width}x{height}", **{k: v for k, v in (extra or {}).items()},
        "contact_sheet": image_markdown(contact_sheet([frames[i] for i in picks], columns=6, thumb_width=160),
                                        "video frames")})
