"""The picture HED sees: the official preprocessing's normal-matcap render with Line Art strokes (paper Sec. 3.1).

The official code (fork `assets/exampleA/town.blend`, text block "Text", lines 183-207) renders every frame of a
segment with BLENDER_WORKBENCH at 1080x720 and the display shading saved in the file: light MATCAP with the
studio light `check_normal+y.exr` (a view-space normal visualisation), colour MATERIAL (every object carries
`projector_mat`, viewport colour 0.8, as the fork's `assets/readme.md` asks), no shadows, film transparent saved as
RGB (black background, lines 155-156), view transform Standard; the "Line Art" grease pencil (contour, crease
140 degrees, material, edge marks, intersection, loose; radius 0.0175 x Thickness factor 0.4) draws white strokes
on top. `mk_edge.py` then runs HED on it.

We composite the same picture from the Cycles G-buffer instead of running Workbench (which needs a GL context and
costs 1.9-2.2 s per 1080x720 frame on this machine): Workbench's matcap lookup (`matcap_uv_compute` in Blender's
`workbench_world_light_lib.glsl`: an orthonormal basis around the per-pixel view vector, uv = 0.496 * (b1.N,
b2.N) + 0.5) on the true face normal (Cycles' Normal pass is flipped towards the camera on back faces; Workbench
shades them unflipped, e.g. town.blend's inside-out ground draws purple), times the base colour, sRGB encoded; and
our G-buffer lines (`vf3d.preprocess.edges`) drawn as white strokes `stroke_width * f / z` pixels wide (town.blend's
strokes evaluate to radius 0.0035, i.e. 0.007 wide; measured in bpy 5.0's Workbench with the LINEART radius set to
0.05 and thickness 1: strokes 0.045-0.05 * f / z pixels wide). Not reproduced: Workbench's
cavity shading (world-space cavity: ridges brighter, valleys darker within 0.2 m), its 8-sample antialiasing, and
Line Art's edge marks and loose edges (invisible in a G-buffer). Measured against Workbench on town.blend at
1080x720 (frames 1 and 46, `scripts/compare_hed_input.py`): mean absolute difference 3.2-3.5 / 255 per channel,
median 1 / 255 on geometry; 93-100 % of either picture's stroke pixels lie within a pixel of the other's.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from vf3d.preprocess.camera import Intrinsics
from vf3d.preprocess.passes import GBuffer

MATCAP_FILE = "check_normal+y.exr"
"""Workbench studio light saved in town.blend's display shading (`scene.display.shading.studio_light`)."""
BASE_COLOUR = 0.8
"""Viewport display colour of `projector_mat`, the material the official workflow puts on every object."""
MATCAP_UV_SCALE = 0.496
"""Blender's `matcap_uv_compute`: uv = N projected on the view basis * 0.496 + 0.5."""
LINE_COLOUR = 1.0
"""The Line Art material's stroke colour (white, linear 1.0) in town.blend."""

Role = Literal["frames", "anchors"]


def _bpy_matcap_folder() -> Path:
    """Blender's matcap folder inside the installed bpy package (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for root in roots:
        for folder in sorted(root.glob("*/datafiles/studiolights/matcap")):
            if (folder / MATCAP_FILE).is_file():
                return folder
    where = ", ".join(map(str, roots)) or "bpy is not installed"
    raise FileNotFoundError(f"Blender's matcap {MATCAP_FILE} was not found under the bpy package ({where}); "
                            "install bpy (pip install bpy) or use EdgeSettings(hed_input='lines')")


@lru_cache(maxsize=1)
def blender_matcap() -> np.ndarray:
    """(S, S, 3) float32 linear RGB of Blender's `check_normal+y.exr`, row 0 = the top of the image (+y)."""
    import OpenEXR

    with OpenEXR.File(str(_bpy_matcap_folder() / MATCAP_FILE)) as exr:
        pixels = next(iter(exr.parts[0].channels.values())).pixels
    return np.ascontiguousarray(pixels[..., :3], dtype=np.float32)


def view_incident(intrinsics: Intrinsics) -> np.ndarray:
    """(H, W, 3) unit vectors from each pixel's surface point towards the camera, in Blender view axes
    (x right, y up, z towards the viewer), as Workbench's per-pixel view vector."""
    u = (np.arange(intrinsics.width, dtype=np.float64) + 0.5 - intrinsics.cx) / intrinsics.fx
    v = (np.arange(intrinsics.height, dtype=np.float64) + 0.5 - intrinsics.cy) / intrinsics.fy
    dx, dy = np.meshgrid(u, v)
    norm = 1.0 / np.sqrt(dx * dx + dy * dy + 1.0)
    return np.stack([-dx * norm, dy * norm, norm], axis=-1)  # camera ray (dx, dy, 1) reversed, y and z flipped


def matcap_uv(normal_view: np.ndarray, incident: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blender's `matcap_uv_compute(I, N)` (not flipped): texture coordinates in [0, 1], v up."""
    ix, iy, iz = incident[..., 0], incident[..., 1], incident[..., 2]
    nx, ny, nz = normal_view[..., 0], normal_view[..., 1], normal_view[..., 2]
    a = 1.0 / (1.0 + iz)
    b = -ix * iy * a
    u = (1.0 - ix * ix * a) * nx + b * ny - ix * nz
    v = b * nx + (1.0 - iy * iy * a) * ny - iy * nz
    return u * MATCAP_UV_SCALE + 0.5, v * MATCAP_UV_SCALE + 0.5


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Blender's 'Standard' view transform on an sRGB display: the sRGB OETF, clipped to [0, 1]."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


SRGB_LUT_SIZE = 1 << 16


@lru_cache(maxsize=1)
def _srgb_lut() -> np.ndarray:
    """uint8 sRGB codes of linear values k / 65535 (`srgb_encode`, rounded): a lookup instead of a power per pixel."""
    return (srgb_encode(np.arange(SRGB_LUT_SIZE) / (SRGB_LUT_SIZE - 1)) * 255.0 + 0.5).astype(np.uint8)


def srgb_uint8(linear: np.ndarray) -> np.ndarray:
    """`srgb_encode` to uint8 through a 16-bit lookup table (off by one code at most, at rounding boundaries).
    `linear` (float32, >= 0) is overwritten."""
    np.minimum(linear, 1.0, out=linear)
    linear *= SRGB_LUT_SIZE - 1
    linear += 0.5
    return _srgb_lut()[linear.astype(np.uint16)]


@lru_cache(maxsize=4)
def _matcap_lookup_basis(intrinsics: Intrinsics, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, `matcap_uv_compute`'s basis (b1, b2) scaled to matcap pixels: map_x = b1 . N + offset,
    map_y = offset - b2 . N; (H, W, 3) float32 each, in Blender view axes."""
    incident = view_incident(intrinsics)
    ix, iy, iz = incident[..., 0], incident[..., 1], incident[..., 2]
    a = 1.0 / (1.0 + iz)
    b = -ix * iy * a
    b1 = np.stack([1.0 - ix * ix * a, b, -ix], axis=-1)
    b2 = np.stack([b, 1.0 - iy * iy * a, -iy], axis=-1)
    scale = MATCAP_UV_SCALE * size
    return (b1 * scale).astype(np.float32), (b2 * scale).astype(np.float32)


def matcap_shading(g: GBuffer, c2w: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(H, W, 3) float32 linear colour of Workbench's MATCAP lighting, colour MATERIAL, base colour 0.8; black on
    the background. `c2w`: OpenCV camera-to-world (4, 4)."""
    matcap = blender_matcap()
    size = matcap.shape[0]
    # world -> OpenCV camera axes -> Blender view axes (y and z flipped), in one matrix
    to_view = (c2w[:3, :3] * np.array([1.0, -1.0, -1.0])).astype(np.float32)
    view = g.normal.astype(np.float32, copy=False) @ to_view
    if g.backfacing is not None:
        view[g.backfacing] *= -1.0  # the face's own normal, as Workbench shades it
    b1, b2 = _matcap_lookup_basis(intrinsics, size)
    # Texture lookup with bilinear filtering at uv = 0.496 (b1.N, b2.N) + 0.5; texture v runs up, rows run down.
    offset = 0.5 * size - 0.5
    map_x = np.einsum("hwc,hwc->hw", b1, view) + offset
    map_y = offset - np.einsum("hwc,hwc->hw", b2, view)
    colour = cv2.remap(matcap, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    colour *= (BASE_COLOUR * ~g.background).astype(np.float32)[..., None]  # black background
    return colour


def stroke_coverage(lines: np.ndarray, depth: np.ndarray, fx: float, width: float) -> np.ndarray:
    """(H, W) float32 coverage of strokes `width * fx / z` pixels wide centred on the 1-px `lines` (H, W) bool.

    Each pixel takes the width w of its nearest line pixel (distance d: OpenCV's labelled distance transform, a
    5x5 chamfer within 2 % of the Euclidean distance) and the overlap of the stroke [d - w/2, d + w/2] with the
    pixel [-1/2, 1/2] as its coverage (a box-filtered, antialiased stroke: a stroke thinner than a pixel draws
    faint, as Workbench draws it)."""
    if not lines.any():
        return np.zeros(lines.shape, np.float32)
    # OpenCV labels each zero pixel (a line pixel) in row-major order: label k is the k-th line pixel.
    distance, labels = cv2.distanceTransformWithLabels((~lines).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    with np.errstate(divide="ignore"):
        line_widths = np.where(np.isfinite(depth[lines]), width * fx / depth[lines], 0.0).astype(np.float32)
    half = 0.5 * line_widths[labels - 1]
    overlap = np.minimum(0.5, distance + half) - np.maximum(-0.5, distance - half)
    return np.clip(overlap, 0.0, 1.0)


def stroke_coverage_reference(lines: np.ndarray, depth: np.ndarray, fx: float, width: float) -> np.ndarray:
    """Slow twin of `stroke_coverage`: scipy's exact Euclidean distance transform and nearest-pixel indices."""
    distance, (iy, ix) = ndimage.distance_transform_edt(~lines, return_indices=True)
    with np.errstate(divide="ignore"):
        pixels = np.where(np.isfinite(depth), width * fx / depth, 0.0)
    half = 0.5 * pixels[iy, ix]
    overlap = np.minimum(0.5, distance + half) - np.maximum(-0.5, distance - half)
    return np.clip(overlap, 0.0, 1.0).astype(np.float32)


def hed_input_image(g: GBuffer, depth: np.ndarray, lines: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics,
                    stroke_width: float) -> np.ndarray:
    """(H, W, 3) uint8: the official HED input composited from one frame's G-buffer.

    Args:
        g: the frame's G-buffer (with `backfacing`, or normals are taken as seen).
        depth: (H, W) planar depth, inf on the background.
        lines: (H, W) bool 1-px line art (`vf3d.preprocess.edges.edge_map` > 0).
        c2w: OpenCV camera-to-world (4, 4); intrinsics: at this G-buffer's size.
        stroke_width: Line Art stroke width in scene units (`EdgeSettings.stroke_width`).
    """
    linear = matcap_shading(g, c2w, intrinsics)
    coverage = stroke_coverage(lines, depth, intrinsics.fx, stroke_width)[..., None]
    linear += (LINE_COLOUR - linear) * coverage
    return srgb_uint8(linear)


# -- reading a guidance folder's detector inputs (SAG and GGI) --------------------------------------------------


def hed_inputs_meta(guidance_dir: Path) -> dict:
    """The guidance's `meta.json["hed_input"]`; a folder written before it existed holds line art only."""
    meta = json.loads((Path(guidance_dir) / "meta.json").read_text())
    if "hed_input" in meta:
        return meta["hed_input"]
    size = {"width": meta["width"], "height": meta["height"]}
    return {"kind": "lines", "detect_resolution": None, "frames": {"folder": "edges", **size},
            "anchors": {"folder": "edges", **size}}


def hed_detect_resolution(guidance_dir: Path) -> int | None:
    """HED's detect (= image) resolution for this guidance: the official render height (720 for a 720x480 video,
    `assets/mk_edge.py:31`) with the matcap inputs; None (HED at the input's own size) with line art."""
    return hed_inputs_meta(guidance_dir)["detect_resolution"]


def read_hed_input(guidance_dir: Path, frame: int, role: Role) -> np.ndarray:
    """The picture the edge detector sees for `frame`: (H, W, 3) matcap + strokes or (H, W) line art, at the size
    the guidance rendered it for `role` ("anchors": SAG's anchor frames; "frames": every frame, for GGI)."""
    entry = hed_inputs_meta(guidance_dir)[role]
    path = Path(guidance_dir) / entry["folder"] / f"{frame:05d}.png"
    if not path.is_file() and role == "anchors":
        return read_hed_input(guidance_dir, frame, "frames")
    return np.asarray(Image.open(path))


def guidance_edge_maps(guidance_dir: Path, frames: Sequence[int], detector: Callable[[np.ndarray], np.ndarray],
                       size: tuple[int, int], role: Role) -> list[np.ndarray]:
    """Edge maps (H, W) uint8 of `frames` at `size` (width, height): the detector on the guidance's inputs, then
    PIL's default resize (bicubic) to `size`, as the official code resizes HED maps on reading (SAG:
    `sag_generate_anchor_view.py:196` `controlnet_image.resize((width, height))`; GGI: `ggi.py:248`
    `Image.open(path).resize((args.width, args.height))`)."""
    maps = []
    for frame in frames:
        edge = np.asarray(detector(read_hed_input(guidance_dir, frame, role)))
        if edge.ndim == 3:
            edge = edge[..., 0]
        if edge.shape != (size[1], size[0]):
            edge = np.asarray(Image.fromarray(edge).resize(size, Image.Resampling.BICUBIC))
        maps.append(edge)
    return maps
