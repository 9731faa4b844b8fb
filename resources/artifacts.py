"""Where assets write their files, and how a folder of outputs becomes a data version."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource

VF3D_HOME_ENV = "VF3D_HOME"


def default_home() -> Path:
    """The project's persistent working folder (`.vf3d` in the repository unless VF3D_HOME is set)."""
    return Path(os.environ.get(VF3D_HOME_ENV, Path(__file__).resolve().parents[1] / ".vf3d"))


class ArtifactStore(ConfigurableResource):
    """Artifacts are stored as `<root>/<asset>/<partition>/`, written atomically by the vf3d functions."""

    root: str = ""
    """Folder for artifacts; empty = `<VF3D_HOME>/artifacts`."""

    def base(self) -> Path:
        return Path(self.root) if self.root else default_home() / "artifacts"

    def path(self, asset: str, partition: str) -> Path:
        return self.base() / asset / partition.replace("|", "__")
