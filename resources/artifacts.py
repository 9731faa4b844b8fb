"""Where assets write their files, and how a folder of outputs becomes a data version."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dagster import ConfigurableResource

from vf3d.common.atomic import TMP_PREFIX

VF3D_HOME_ENV = "VF3D_HOME"


def default_home() -> Path:
    """The project's persistent working folder (`.vf3d` in the repository unless VF3D_HOME is set)."""
    return Path(os.environ.get(VF3D_HOME_ENV, Path(__file__).resolve().parents[1] / ".vf3d"))


def content_hash(path: Path) -> str:
    """SHA-256 over a file or over a folder's files (relative names + bytes, sorted; temporaries skipped)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part.startswith(TMP_PREFIX) for part in p.parts))
    for file in files:
        digest.update(str(file.relative_to(path.parent if path.is_file() else path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class ArtifactStore(ConfigurableResource):
    """Artifacts are stored as `<root>/<asset>/<partition>/`, written atomically by the vf3d functions."""

    root: str = ""
    """Folder for artifacts; empty = `<VF3D_HOME>/artifacts`."""

    def base(self) -> Path:
        return Path(self.root) if self.root else default_home() / "artifacts"

    def path(self, asset: str, partition: str) -> Path:
        return self.base() / asset / partition.replace("|", "__")
