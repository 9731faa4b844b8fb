"""Geometric edge maps h_i (paper Sec. 3.1): silhouette, crease, object boundary and intersection.

Computed in image space from the G-buffer of one frame, by comparing each pixel with its right and
lower neighbour:

- silhouette: a depth discontinuity, i.e. the neighbour's 3D point lies off this pixel's tangent plane
  (point-to-plane distance, so planes seen at grazing angles never fire), or a geometry/background border;
- crease: on one continuous surface of one object, shading normals differ by more than
  `crease_angle_deg` (the official code's Line Art crease of 140 degrees = 40 degrees between normals);
- object boundary: a material border on one object, or two objects meeting flush (normals agree);
- intersection: two different objects meeting on a continuous surface at an angle, i.e. the line
  where they interpenetrate. Blender's Freestyle has no such edge type; the index passes make it exact.

Edges are drawn on the pixel nearer the camera, white (255) on black, optionally thickened.

These line maps are not what the models see. The official code hands HED a normal-matcap render with the
Line Art strokes on top (`vf3d.preprocess.hed_input`, `EdgeSettings.hed_input`), every frame at 1.5x the video
size (1080x720 for 720x480); SAG reads HED's maps at that size, GGI resizes them to the video size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from vf3d.preprocess.passes import GBuffer


@dataclass(frozen=True)
class EdgeSettings:
    """How geometric edges are detected and drawn."""

    crease_angle_deg: float = 40.0
    """Normals differing by more than this make a crease (Line Art's 140-degree crease in the official code)."""
    depth_jump: float = 0.01
    """A neighbour farther than this fraction of the depth from the tangent plane is a silhouette."""
    line_width: int = 1
    """Line thickness in pixels (1 = single-pixel lines)."""
    hed_input: Literal["matcap_lines", "lines"] = "matcap_lines"
    """What the edge detector (HED) sees. "matcap_lines" (official: fork `assets/exampleA/town.blend` text block
    "Text" lines 183-207 render Workbench normal-matcap frames with the Line Art strokes, `assets/mk_edge.py`
    runs HED on them): composited from the G-buffer (`vf3d.preprocess.hed_input`). "lines": these line maps."""
    stroke_width: float = 0.007
    """Line Art stroke width in scene units: town.blend's LINEART `radius` 0.0175 x THICKNESS `thickness_factor` 0.4
    (strokes evaluate to radius 0.0035 in bpy 5.0); a stroke draws `stroke_width * f / z` pixels wide."""
    anchor_scale: float = 1.5
    """The anchor frames' HED inputs are also rendered at this multiple of the video size, for SAG (official: every
    frame rendered at 1080x720, text block "Text" lines 185-186, for a 720x480 video, `ggi.py:195-196`); 1 = none."""
    frame_scale: float = 1.0
    """Every frame's HED input (GGI's edge maps) at this multiple of the video size. 1 (default): composited from
    the video-size G-buffer, no second render, and HED still detects at the official 1088x704 grid (the input is
    enlarged to it); 1.5 (official): every frame rendered again at 1080x720, measured in
    `scripts/bench_preprocess.py`."""


EDGE_PRESETS: dict[str, EdgeSettings] = {
    "paper": EdgeSettings(),
    "official_every_frame": EdgeSettings(frame_scale=1.5),
    "lines": EdgeSettings(hed_input="lines", anchor_scale=1.0),
}
"""`paper`: the official HED input and SAG size, GGI's inputs composited at the video size; `official_every_frame`:
every frame re-rendered at 1.5x as the official code does; `lines`: our 1-px line maps straight into HED."""


EDGE_TYPES = ("silhouette", "crease", "object_boundary", "intersection")


def _pair_edges(g: GBuffer, depth: np.ndarray, axis: int, s: EdgeSettings) -> dict[str, np.ndarray]:
    """Edge type masks between each pixel and its next neighbour along `axis` (shape shrinks by 1)."""
    a = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
    b = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
    bg_a, bg_b = g.background[a], g.background[b]
    both = ~bg_a & ~bg_b
    pa, pb, na, nb = g.position[a], g.position[b], g.normal[a], g.normal[b]
    gap = pb - pa
    off_plane = np.minimum(np.abs((gap * na).sum(-1)), np.abs((gap * nb).sum(-1)))
    scale = np.minimum(depth[a], depth[b])
    with np.errstate(invalid="ignore"):
        jump = both & (off_plane > s.depth_jump * scale)
    silhouette = (bg_a != bg_b) | jump
    continuous = both & ~jump
    cos = np.clip((na * nb).sum(-1), -1.0, 1.0)
    bent = cos < np.cos(np.radians(s.crease_angle_deg))
    same_object = g.object_index[a] == g.object_index[b]
    return {
        "silhouette": silhouette,
        "crease": continuous & same_object & bent,
        "object_boundary": continuous
        & ((same_object & (g.material_index[a] != g.material_index[b]) & ~bent) | (~same_object & ~bent)),
        "intersection": continuous & ~same_object & bent,
        "_a_nearer": np.where(bg_b, True, np.where(bg_a, False, depth[a] <= depth[b])),
    }


def edge_types(g: GBuffer, depth: np.ndarray, settings: EdgeSettings = EdgeSettings()) -> dict[str, np.ndarray]:
    """Per-type boolean edge masks (H, W), each edge drawn on the pixel nearer the camera."""
    h, w = depth.shape
    out = {name: np.zeros((h, w), bool) for name in EDGE_TYPES}
    for axis in (0, 1):
        pairs = _pair_edges(g, depth, axis, settings)
        nearer = pairs.pop("_a_nearer")
        a = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        b = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        for name, mask in pairs.items():
            out[name][a] |= mask & nearer
            out[name][b] |= mask & ~nearer
    return out


def edge_map(g: GBuffer, depth: np.ndarray, settings: EdgeSettings = EdgeSettings()) -> np.ndarray:
    """The structural guidance h_i: all edge types, uint8 (H, W), 255 on edges, 0 elsewhere."""
    union = np.logical_or.reduce(list(edge_types(g, depth, settings).values()))
    if settings.line_width > 1:
        union = ndimage.binary_dilation(union, iterations=settings.line_width - 1)
    return np.where(union, 255, 0).astype(np.uint8)
