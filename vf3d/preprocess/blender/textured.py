"""Training clips for GGI in the tiny profile: benchmark shots rendered with random textures and light.

Real videos with exact flows and depth: the RGB frames come from Cycles with procedural noise textures in
random colours, a sun and a sky; flows and depth come from the same shot's G-buffer (`vf3d.preprocess.guidance`).
"""

from __future__ import annotations

import random
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix
from PIL import Image

from vf3d.common.interrupts import checkpoint, stop_on_signals
from vf3d.preprocess.blender import quiet_stdout
from vf3d.preprocess.blender.scene_io import load_shot
from vf3d.preprocess.camera import opencv_to_blender_c2w
from vf3d.preprocess.trajectory import Trajectory


def _random_material(material: bpy.types.Material, rng: random.Random) -> None:
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = rng.uniform(2.0, 30.0)
    noise.inputs["Detail"].default_value = rng.uniform(0.0, 6.0)
    ramp = nodes.new("ShaderNodeValToRGB")
    for stop, position in zip(ramp.color_ramp.elements, (0.4, 0.6)):  # noise Fac sits near 0.5: contrast
        stop.position = position
        stop.color = (rng.random(), rng.random(), rng.random(), 1.0)
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.inputs["Roughness"].default_value = rng.uniform(0.3, 1.0)
    links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(bsdf.outputs["BSDF"], nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])


def _light(scene: bpy.types.Scene, rng: random.Random) -> None:
    sun = bpy.data.objects.new("vf3d_sun", bpy.data.lights.new("vf3d_sun", "SUN"))
    sun.data.energy = rng.uniform(2.0, 5.0)
    sun.rotation_euler = (rng.uniform(0.2, 1.0), 0.0, rng.uniform(0.0, 6.28))
    scene.collection.objects.link(sun)
    world = bpy.data.worlds.new("vf3d_sky")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (rng.uniform(0.3, 0.6), rng.uniform(0.5, 0.8), 1.0, 1.0)
    scene.world = world


def render_textured_clip(source: Path, out_dir: Path, width: int, height: int, seed: int, samples: int = 8,
                         trajectory: Path | None = None) -> Trajectory:
    """Render every frame of a shot with random textures into `out_dir/{frame:05d}.png` (RGB)."""
    traj = load_shot(source, width, height, trajectory)
    scene = bpy.context.scene
    rng = random.Random(seed)
    for material in bpy.data.materials:
        if not material.is_grease_pencil:
            _random_material(material, rng)
    plain = bpy.data.materials.new("vf3d_textured_default")
    _random_material(plain, rng)
    for obj in scene.objects:
        if not obj.hide_render and hasattr(obj.data, "materials") and len(obj.material_slots) == 0:
            obj.data.materials.append(plain)
    _light(scene, rng)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.use_persistent_data = True
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    out_dir.mkdir(parents=True, exist_ok=True)
    with stop_on_signals():
        for index in range(traj.num_frames):
            checkpoint()  # a signal swallowed by Blender's render callback stops the loop here
            _render_textured_frame(scene, traj, index, out_dir)
    return traj


def _render_textured_frame(scene: bpy.types.Scene, traj: Trajectory, index: int, out_dir: Path) -> None:
    scene.frame_set(traj.source_frames[index])
    scene.camera.matrix_world = Matrix(opencv_to_blender_c2w(traj.c2w[index]).tolist())
    scene.render.filepath = str(out_dir / f"{index:05d}.png")
    with quiet_stdout():
        bpy.ops.render.render(write_still=True)


def load_frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
