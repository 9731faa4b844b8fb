"""Blender as a data parser: every line of bpy code of the pipeline lives in this package (the benchmark's
scene-building scripts, `vf3d.benchmark.scenes`/`styles`, are the only other bpy users).

`scene_io` opens or imports a shot safely and reads its camera; `render` renders the per-frame
passes (world position, normal, object/material index, depth) that every guidance map is computed from;
`textured` renders a shot with random textures for GGI training clips.
"""

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence Blender's progress lines (file reads, Cycles frames), which it prints from C straight to file descriptor 1."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
