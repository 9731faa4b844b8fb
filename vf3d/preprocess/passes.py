"""The typed contract between Blender and the numeric code: one frame's geometry buffer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GBuffer:
    """Per-pixel passes of one frame, sampled at pixel centres, row 0 at the top of the image."""

    position: np.ndarray  # (H, W, 3) float32 world coordinates (Blender world, Z up)
    normal: np.ndarray  # (H, W, 3) float32 world-space shading normal (unit length on geometry)
    object_index: np.ndarray  # (H, W) int32, 0 = background
    material_index: np.ndarray  # (H, W) int32
    background: np.ndarray  # (H, W) bool, True where no geometry was hit
    backfacing: np.ndarray | None = None  # (H, W) bool, True where the camera sees a face's back (normal is flipped)

    def validate(self) -> None:
        """Check shapes, dtypes and finiteness; a failure here is a bug in the renderer, not user input."""
        h, w = self.background.shape
        for name, shape in (("position", (h, w, 3)), ("normal", (h, w, 3)), ("object_index", (h, w)),
                            ("material_index", (h, w))):
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"GBuffer.{name} has shape {value.shape}, expected {shape}")
        if self.backfacing is not None and self.backfacing.shape != (h, w):
            raise ValueError(f"GBuffer.backfacing has shape {self.backfacing.shape}, expected {(h, w)}")
        if not np.isfinite(self.position[~self.background]).all():
            raise ValueError("GBuffer.position is not finite on geometry pixels")
