"""Dagster resources: artifacts, the Blender renderer, the GPU and the model store."""

from resources.artifacts import ArtifactStore
from resources.blender import BlenderRenderer
from resources.gpu import GPU
from resources.models import ModelStore

__all__ = ["ArtifactStore", "BlenderRenderer", "GPU", "ModelStore"]
