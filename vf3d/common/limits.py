"""Limits every input is checked against before any work starts, so a bad size fails in one line, not
after a minute of rendering or deep inside a model."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vf3d.common.errors import VF3DInputError

RENDER_MULTIPLE = 16
"""Model-side multiple of render sizes: FLUX packs 2x2 patches of an 8x VAE latent, CogVideoX 2x2 patches of
an 8x latent, so widths and heights not divisible by 16 fail inside the models."""
BLENDER_MAX_SIDE = 65536
"""Blender's largest render resolution per side."""
MAX_RENDER_PIXELS = 4096 * 4096
"""Largest render vf3d accepts: each pixel costs about 1 KB of G-buffers, flows and depth per frame."""
MAX_REFERENCE_PIXELS = 50_000_000
"""Largest style reference image (pixels): larger files are decompression bombs or scans, not references."""
MAX_REFERENCE_BYTES = 200 * 1024 * 1024
MIN_REFERENCE_SIDE = 32
"""Smallest side (pixels) of a style reference. The style LoRA trains on centre crops of the reference (16:9, 4:3,
1:1 and its own aspect, `vf3d.sag.style_lora.ASPECTS`); the 16:9 crop keeps 9/16 of the short side, so under 2 px
it is empty and training fails in OpenCV minutes into a run. 32 px is one step of `training_size` (training sides
are multiples of 32) and keeps every crop at least 18 px of real image; anything smaller is an icon, not a style."""
MAX_FRAMES = 2251
"""Longest camera range vf3d accepts by default: 50 segments of 45 steps (about 94 s at 24 fps). Every frame costs
a Blender render (about 0.4 s at 720x480 on a CPU) and its G-buffers on disk before any model runs, so a
mistyped range (frame_end = 100000) is refused up front instead of rendering for hours. Raise it with
`MAX_FRAMES_ENV`."""
MAX_FRAMES_ENV = "VF3D_MAX_FRAMES"


def max_frames() -> int:
    """The frame limit: `VF3D_MAX_FRAMES` if set (a positive integer), else `MAX_FRAMES`."""
    value = os.environ.get(MAX_FRAMES_ENV, "").strip()
    if not value:
        return MAX_FRAMES
    if not value.isdigit() or int(value) < 2:
        raise VF3DInputError(MAX_FRAMES_ENV, f"must be a whole number of frames (2 or more), got {value!r}")
    return int(value)


def check_frame_count(where: str | Path, frames: int) -> None:
    """A one-line `VF3DInputError` about `where` if a shot has more frames than the limit (`max_frames`)."""
    limit = max_frames()
    if frames > limit:
        raise VF3DInputError(where, f"the camera range has {frames} frames, more than vf3d's limit of {limit} "
                                    f"(set {MAX_FRAMES_ENV}=N to raise it, or render a shorter range)")


def check_render_size(where: str | Path, width: object, height: object, multiple: int = 1) -> tuple[int, int]:
    """`(width, height)` if they are usable render sizes, else a one-line `VF3DInputError` about `where`."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
        raise VF3DInputError(where, f"render size must be integers, got {width!r}x{height!r}")
    if width < 8 or height < 8:
        raise VF3DInputError(where, f"render size {width}x{height} is too small (at least 8x8)")
    if max(width, height) > BLENDER_MAX_SIDE:
        raise VF3DInputError(where, f"render size {width}x{height} exceeds Blender's maximum of "
                                    f"{BLENDER_MAX_SIDE} pixels per side")
    if width * height > MAX_RENDER_PIXELS:
        raise VF3DInputError(where, f"render size {width}x{height} ({width * height / 1e6:.1f} MP) exceeds vf3d's "
                                    f"maximum of {MAX_RENDER_PIXELS / 1e6:.1f} MP")
    if width % multiple or height % multiple:
        raise VF3DInputError(where, f"render size {width}x{height} must be a multiple of {multiple} in both "
                                    f"directions (the models' latent patches), e.g. "
                                    f"{width // multiple * multiple or multiple}x{height // multiple * multiple or multiple}")
    return width, height


def available_memory_bytes() -> int | None:
    """MemAvailable of this machine (Linux), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_reference_image(path: str | Path) -> tuple[int, int]:
    """Open and fully decode a style reference image; `(width, height)` or a one-line `VF3DInputError`."""
    path = Path(path)
    if not path.is_file():
        raise VF3DInputError(path, "style reference image not found")
    size = path.stat().st_size
    if size > MAX_REFERENCE_BYTES:
        raise VF3DInputError(path, f"style reference is {size / 2**20:.0f} MiB; the limit is "
                                   f"{MAX_REFERENCE_BYTES / 2**20:.0f} MiB")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if min(width, height) < MIN_REFERENCE_SIDE:
                raise VF3DInputError(path, f"style reference is {width}x{height}, too small: at least "
                                           f"{MIN_REFERENCE_SIDE} px on each side (the style LoRA trains on its crops)")
            if width * height > MAX_REFERENCE_PIXELS:
                raise VF3DInputError(path, f"style reference is {width}x{height} ({width * height / 1e6:.0f} MP); "
                                           f"the limit is {MAX_REFERENCE_PIXELS / 1e6:.0f} MP")
            image.load()  # decode every byte: a truncated file fails here, not in the middle of training
    except VF3DInputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise VF3DInputError(path, f"not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                             ) from None
    return width, height
