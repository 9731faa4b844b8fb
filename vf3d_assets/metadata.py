"""Asset metadata helpers: pictures inline in the UI, content-hash data versions."""

from __future__ import annotations

import base64

import numpy as np
from dagster import MetadataValue

from vf3d.common.visualize import png_bytes


def image_markdown(image: np.ndarray, title: str) -> MetadataValue:
    """An image embedded in markdown metadata (a data URI), shown as a thumbnail in the asset's page."""
    encoded = base64.b64encode(png_bytes(image)).decode()
    return MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")
