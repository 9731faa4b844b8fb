"""Blender as a data parser: every line of bpy code of the pipeline lives in this package (the benchmark's
scene-building scripts, `vf3d.benchmark.scenes`/`styles`, are the only other bpy users).

`scene_io` opens or imports a shot safely and reads its camera; `render` renders the per-frame
passes (world position, normal, object/material index, depth) that every guidance map is computed from;
`textured` renders a shot with random textures for GGI training clips.
"""

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

BLENDER_LOGGER = "vf3d.blender"
"""The logger Blender's own messages go to (INFO): silent unless a handler is attached (`vf3d ... --verbose`)."""


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Keep Blender's own messages out of the terminal: its progress lines (file reads, Cycles frames) and its
    complaints (a scripted driver that auto-run keeps from running prints five lines), which it prints from C
    straight to file descriptors 1 and 2. They go to the `BLENDER_LOGGER` log instead. Real errors still reach
    the user: Blender raises them to Python as exceptions, which become one line."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as captured:
        try:
            os.dup2(captured.fileno(), 1)
            os.dup2(captured.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in zip((1, 2), saved):
                os.dup2(original, fd)
                os.close(original)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            log = logging.getLogger(BLENDER_LOGGER)
            for line in text.splitlines():
                if line.strip():
                    log.info(line.rstrip())
