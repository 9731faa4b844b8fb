"""Dagster resources: where artifacts live, and the Blender renderer."""

from resources.artifacts import ArtifactStore
from resources.blender import BlenderRenderer

__all__ = ["ArtifactStore", "BlenderRenderer"]
