"""The persistent Dagster instance inside the project's working folder (never a fresh temp home)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from resources.artifacts import default_home

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Set DAGSTER_HOME to `<VF3D_HOME>/dagster_home` unless already set, creating it with our dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(default_home() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(TEMPLATE, home / "dagster.yaml")
    return home
