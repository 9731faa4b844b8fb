"""The Blender renderer resource: preprocessing settings shared by every scene."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from dagster import ConfigurableResource

from vf3d.benchmark.catalog import SceneEntry
from vf3d.preprocess.edges import EDGE_PRESETS, EdgeSettings
from vf3d.preprocess.guidance import GuidanceStats, preprocess


class BlenderRenderer(ConfigurableResource):
    """Headless Cycles on the CPU (bpy), as measured in DESIGN.md."""

    threads: int = 0
    """Cycles render threads; 0 = all cores."""
    crease_angle_deg: float = 40.0
    """Normals differing by more than this make a crease (official code: Line Art crease 140 degrees)."""
    line_width: int = 1
    """Edge line thickness in pixels."""
    edge_preset: str = "paper"
    """What the edge detector will read (`vf3d.preprocess.edges.EDGE_PRESETS`): "paper" (the official normal-matcap
    + Line Art picture, the anchor frames also at 1.5x for SAG), "official_every_frame" (every frame also at 1.5x,
    about 2x the preprocessing time), "lines" (our 1-px line maps)."""

    def edge_settings(self) -> EdgeSettings:
        if self.edge_preset not in EDGE_PRESETS:
            raise ValueError(f"BlenderRenderer.edge_preset={self.edge_preset!r}: expected one of "
                             f"{', '.join(EDGE_PRESETS)}")
        return replace(EDGE_PRESETS[self.edge_preset], crease_angle_deg=self.crease_angle_deg,
                       line_width=self.line_width)

    def render_guidance(self, scene: SceneEntry, out_dir: Path,
                        progress: Callable[[int, int], None] | None = None) -> GuidanceStats:
        return preprocess(scene.source, out_dir, scene.width, scene.height, scene.trajectory,
                          self.edge_settings(), self.threads or None, progress, scene.library_paths)
