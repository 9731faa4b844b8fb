"""Where assets write their files, and how a folder of outputs becomes a data version."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from vf3d.common.home import VF3D_HOME_ENV, default_home  # noqa: F401 - the resources' import point


class ArtifactStore(ConfigurableResource):
    """Artifacts are stored as `<root>/<asset>/<partition>/`, written atomically by the vf3d functions."""

    root: str = ""
    """Folder for artifacts; empty = `<VF3D_HOME>/artifacts`."""

    def base(self) -> Path:
        return Path(self.root) if self.root else default_home() / "artifacts"

    def path(self, asset: str, partition: str) -> Path:
        return self.base() / asset / partition.replace("|", "__")
