"""How close our composited HED input is to the official Workbench + Line Art render of the same frames.

    .venv/bin/python scripts/compare_hed_input.py SHOT.blend [--frames 0 45] [--width 1080 --height 720] [--out DIR]

For each trajectory frame index: our picture (`vf3d.preprocess.hed_input`, from a Cycles G-buffer at the given
size) and Blender's Workbench render with town.blend's display settings (`vf3d.preprocess.blender.workbench`; the
shot's own "Line Art" object when it has one, as the official `assets/exampleA/town.blend` does, else one with
town.blend's settings). Prints one JSON line per frame: mean absolute difference per channel (0-255), its median on
geometry, and how many of each picture's stroke pixels lie within a pixel of the other's. Workbench needs a GL
context (libegl1); it runs in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

WORKBENCH = """
import sys; sys.path.insert(0, {root!r})
import bpy
from vf3d.preprocess.blender.workbench import add_line_art, configure_workbench
bpy.ops.wm.open_mainfile(filepath={blend!r}, load_ui=False, use_scripts=False)
scene = bpy.context.scene
own = [o for o in scene.objects if o.type == "GREASEPENCIL" and any(m.type == "LINEART" for m in o.modifiers)]
configure_workbench(scene, {width}, {height})
for o in own:
    o.hide_render = False
if not own:
    add_line_art(scene)
for index, frame in {frames!r}:
    scene.frame_set(frame)
    scene.render.filepath = f"{out}/workbench_{{index:05d}}.png"
    bpy.ops.render.render(write_still=True)
"""


def ours(blend: Path, frames: list[int], width: int, height: int, out: Path) -> list[int]:
    """Render our pictures; returns the scene frame numbers of the trajectory indices."""
    import bpy

    from vf3d.preprocess.blender.render import configure_render, render_frame
    from vf3d.preprocess.blender.scene_io import load_shot
    from vf3d.preprocess.depth import planar_depth
    from vf3d.preprocess.edges import EdgeSettings, edge_map
    from vf3d.preprocess.hed_input import hed_input_image

    settings = EdgeSettings()
    traj = load_shot(blend, width, height)
    scene = bpy.context.scene
    configure_render(scene, width, height)
    for i in frames:
        g = render_frame(scene, traj, i, out)
        depth = planar_depth(g.position, g.background, traj.c2w[i])
        lines = edge_map(g, depth, settings) > 0
        Image.fromarray(hed_input_image(g, depth, lines, traj.c2w[i], traj.intrinsics, settings.stroke_width)).save(
            out / f"ours_{i:05d}.png")
        np.save(out / f"background_{i:05d}.npy", g.background)
    return [traj.source_frames[i] for i in frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("blend", type=Path)
    parser.add_argument("--frames", type=int, nargs="+", default=[0])
    parser.add_argument("--width", type=int, default=1080)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--out", type=Path, help="keep the pictures in this folder")
    args = parser.parse_args()
    from scipy import ndimage

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        scene_frames = ours(args.blend.resolve(), args.frames, args.width, args.height, out)
        script = WORKBENCH.format(root=str(ROOT), blend=str(args.blend.resolve()), width=args.width,
                                  height=args.height, frames=list(zip(args.frames, scene_frames)), out=str(out))
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
        for i in args.frames:
            reference = out / f"workbench_{i:05d}.png"
            if not reference.is_file():
                sys.exit(f"Workbench did not render (needs libegl1?): {result.stderr[-1000:]}")
            a = np.asarray(Image.open(out / f"ours_{i:05d}.png")).astype(int)
            b = np.asarray(Image.open(reference).convert("RGB")).astype(int)
            geometry = ~np.load(out / f"background_{i:05d}.npy")
            difference = np.abs(a - b)
            white_a, white_b = a.min(-1) > 200, b.min(-1) > 200
            print(json.dumps({
                "frame": i, "scene_frame": scene_frames[args.frames.index(i)],
                "mean_abs": round(float(difference.mean()), 3),
                "median_abs_on_geometry": float(np.median(difference[geometry])),
                "our_strokes_near_theirs": round(float(ndimage.binary_dilation(white_b)[white_a].mean()), 3),
                "their_strokes_near_ours": round(float(ndimage.binary_dilation(white_a)[white_b].mean()), 3),
            }), flush=True)


if __name__ == "__main__":
    main()
