"""Pictures a person looks at: edge contact sheets, flow colour-wheel images, plots (PNG), previews (GIF)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def animated_gif(frames: Sequence[np.ndarray], fps: float, width: int = 160) -> bytes:
    """Every frame, scaled to `width`, as a looping GIF (the UI's video preview; GIF: every browser animates it
    inside markdown)."""
    if not frames:
        raise ValueError("animated_gif needs at least one frame")
    height = max(1, round(width * frames[0].shape[0] / frames[0].shape[1]))
    images = [Image.fromarray(f).convert("RGB").resize((width, height), Image.BILINEAR) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000 / fps)), optimize=False)
    return buffer.getvalue()


def contact_sheet(images: Sequence[np.ndarray], columns: int = 6, thumb_width: int = 160, gap: int = 2) -> np.ndarray:
    """Tile images (H, W) or (H, W, 3) uint8 into one RGB sheet of thumbnails, row-major."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    h, w = images[0].shape[:2]
    tw, th = thumb_width, max(1, round(thumb_width * h / w))
    rows = -(-len(images) // columns)
    sheet = np.full((rows * (th + gap) - gap, min(columns, len(images)) * (tw + gap) - gap, 3), 40, np.uint8)
    for k, image in enumerate(images):
        thumb = Image.fromarray(image).convert("RGB").resize((tw, th), Image.Resampling.BOX)
        r, c = divmod(k, columns)
        sheet[r * (th + gap): r * (th + gap) + th, c * (tw + gap): c * (tw + gap) + tw] = np.asarray(thumb)
    return sheet


def flow_to_rgb(flow: np.ndarray, valid: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-wheel flow picture: hue = direction, saturation = magnitude; invalid pixels black. (H, W, 3) uint8."""
    dx, dy = flow[..., 0], flow[..., 1]
    magnitude = np.hypot(dx, dy)
    scale = max_magnitude or (float(np.percentile(magnitude[valid], 99)) if valid.any() else 1.0) or 1.0
    hue = (np.arctan2(-dy, -dx) / np.pi + 1) / 2  # [0, 1]
    sat = np.clip(magnitude / scale, 0, 1)
    hsv = np.stack([hue * 255, sat * 255, np.full_like(hue, 255)], axis=-1).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(hsv, mode="HSV").convert("RGB"))
    return np.where(valid[..., None], rgb, 0).astype(np.uint8)


def line_plot(values: Sequence[float], width: int = 320, height: int = 160, margin: int = 8) -> np.ndarray:
    """A small line chart of `values` (e.g. a loss curve) as an RGB image, min/max scaled."""
    from PIL import ImageDraw

    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if len(values) >= 2:
        lo, hi = float(min(values)), float(max(values))
        span = hi - lo or 1.0
        points = [(margin + i * (width - 2 * margin) / (len(values) - 1),
                   height - margin - (v - lo) / span * (height - 2 * margin)) for i, v in enumerate(values)]
        draw.line(points, fill=(30, 90, 200), width=2)
    draw.text((margin, 2), f"max {max(values):.4g}" if values else "no values", fill=(0, 0, 0))
    draw.text((margin, height - 12), f"min {min(values):.4g}" if values else "", fill=(0, 0, 0))
    return np.asarray(canvas)
