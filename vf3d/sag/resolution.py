"""The size anchors are sampled at, and the moves between it and the video size (paper Sec. 3.2).

The official anchors are not made at the video size. `sag_generate_anchor_view.py:560` takes the size from the
edge maps, `args.width, args.height = Image.open(path_heds[0]).size`, and the edge maps are as large as the
preprocessing's renders (fork `assets/mk_edge.py:30-32`; `assets/sampleA/arc*/hed/*.png` are 1080x720, 1.5x the
720x480 video); x-flux then floors both sides to multiples of 16 (`sag_generate_anchor_view.py:179-180`), so a
720x480 video's anchors are sampled at 1072x720, and `ggi.py:218-219` resizes them to 720x480 with PIL's default
filter (bicubic) when it reads them. What follows from the size: the schedule shift's token count
(`(w // 8) * (h // 8) // 256`: 47 at 1072x720, 21 at 720x480), and the unobserved mask's 5x5 x 12 dilation and
9x9 blur are in 1072x720 pixels. The previous anchor is warped into the next at that size along a correspondence
map resized to it (`sag_generate_anchor_view.py:478-482`: bilinear, kept only where every contributing texel was
covered); ours is the video-size flow f_N->0 resized the same way.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

XFLUX_MULTIPLE = 16
"""x-flux's `width = 16 * (width // 16)` (`sag_generate_anchor_view.py:179-180`)."""


def sag_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) anchors are sampled at for a `width` x `height` video: the edge maps' size
    (`scale` x the video size, rounded) floored to multiples of 16 as x-flux does. 720x480 at 1.5 -> 1072x720."""
    render_w, render_h = round(width * scale), round(height * scale)
    return XFLUX_MULTIPLE * (render_w // XFLUX_MULTIPLE), XFLUX_MULTIPLE * (render_h // XFLUX_MULTIPLE)


def resize_flow(flow: np.ndarray, valid: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A flow field (H, W, 2) in pixels and its valid mask (H, W) at `size` (width, height).

    Bilinear (pixel centres aligned), the vectors scaled by the size ratio; a pixel stays valid only if every
    texel its bilinear weights touch was valid, as the official code keeps a resized correspondence only where
    its coverage channel is still exactly 65535 (`sag_generate_anchor_view.py:478-482`)."""
    height, width = valid.shape
    if (width, height) == tuple(size):
        return flow, valid
    scale = np.array([size[0] / width, size[1] / height], np.float32)
    resized = cv2.resize(flow.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) * scale
    coverage = cv2.resize(valid.astype(np.uint16) * 65535, size, interpolation=cv2.INTER_LINEAR)
    return resized, coverage == 65535


def to_video_size(image: Image.Image, width: int, height: int) -> Image.Image:
    """An anchor at the video size, as `ggi.py:219` reads it: `Image.open(path).resize((args.width, args.height))`
    (PIL's default filter for RGB: bicubic)."""
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)
