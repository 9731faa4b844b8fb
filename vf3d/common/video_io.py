"""Video files: H.264 mp4 through PyAV, written atomically; and chaining segments at shared frames."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vf3d.common.atomic import atomic_file


def write_mp4(frames: Sequence[np.ndarray], path: Path, fps: float = 8.0, crf: int = 18) -> None:
    """Encode (H, W, 3) uint8 RGB frames as H.264 (yuv420p, even sizes required by the codec), the index (moov)
    before the frames (`+faststart`) so that a browser plays the file while it is still arriving."""
    if not frames:
        raise ValueError("write_mp4: no frames to write")
    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"write_mp4: H.264 in yuv420p needs even sizes, got {width}x{height}")
    with atomic_file(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(crf)}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
            container.mux(stream.encode())


def read_mp4(path: Path) -> list[np.ndarray]:
    """Decode every frame of a video as (H, W, 3) uint8 RGB."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def chain_segments(segments: Sequence[Sequence[np.ndarray]], duplicate_joins: bool = False) -> list[np.ndarray]:
    """Join per-segment frames where consecutive segments share their boundary frame.

    Segment k covers trajectory frames [s_k, e_k] and segment k+1 starts at e_k. By default every segment
    after the first contributes all frames but its first: the boundary frame is kept once, no duplicated and
    no missing frames. This is a deliberate difference from the official code (a repeated frame is a visible
    stutter at every join, 8 fps). `duplicate_joins=True` is the official behaviour (`ggi.py` l. 299-302:
    every segment's `videos[:-3]`, all 46 frames, saved under a running counter, the next segment starting
    from `videos[-1]`): each join shows its boundary frame twice, the end of segment k and then the first
    frame of segment k+1 regenerated from it.
    """
    video: list[np.ndarray] = []
    for k, frames in enumerate(segments):
        video.extend(frames if k == 0 or duplicate_joins else frames[1:])
    return video
