"""The working folder: where vf3d keeps its instance, artifacts, weights, settings and the user's own catalog."""

from __future__ import annotations

import os
from pathlib import Path

VF3D_HOME_ENV = "VF3D_HOME"


def default_home() -> Path:
    """The project's persistent working folder (`.vf3d` in the repository unless VF3D_HOME is set)."""
    return Path(os.environ.get(VF3D_HOME_ENV, Path(__file__).resolve().parents[2] / ".vf3d"))
