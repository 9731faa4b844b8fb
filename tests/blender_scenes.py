"""Small synthetic shots with analytic answers, written as real .blend / .glb files for the tests."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import bpy
import numpy as np
from mathutils import Euler, Matrix, Vector


def reset() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def box(name: str, location: Sequence[float], size: Sequence[float], rotation_z: float = 0.0) -> bpy.types.Object:
    bpy.ops.mesh.primitive_cube_add(location=location, rotation=(0, 0, rotation_z))
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = [s / 2 for s in size]
    bpy.ops.object.transform_apply(scale=True)
    return obj


def add_camera(scene: bpy.types.Scene, name: str = "Camera", lens: float = 30.0) -> bpy.types.Object:
    data = bpy.data.cameras.new(name)
    data.lens = lens
    camera = bpy.data.objects.new(name, data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def animate(scene: bpy.types.Scene, camera: bpy.types.Object, pose: Callable[[int], Matrix], frames: int) -> None:
    """Keyframe the camera's world matrix (Blender axes) on frames 1..frames."""
    scene.frame_start, scene.frame_end = 1, frames
    camera.rotation_mode = "QUATERNION"
    for f in range(1, frames + 1):
        camera.matrix_world = pose(f - 1)
        camera.keyframe_insert("location", frame=f)
        camera.keyframe_insert("rotation_quaternion", frame=f)


def save(path: Path) -> Path:
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def looking_down_minus_z(x: float = 0.0, y: float = 0.0, z: float = 0.0, yaw: float = 0.0) -> Matrix:
    """A Blender camera at (x, y, z) looking down world -Z, turned by `yaw` about world Z."""
    return Matrix.Translation((x, y, z)) @ Euler((0, 0, yaw)).to_matrix().to_4x4()


def dolly_over_plane(path: Path, frames: int = 3, step: float = 0.1, distance: float = 10.0,
                     occluder: bool = False) -> Path:
    """Camera looking straight down at a fronto-parallel ground plane, moving sideways (+X) by `step`.

    With `occluder`, a box stands on the plane under the camera's path.
    """
    scene = reset()
    bpy.ops.mesh.primitive_plane_add(size=200, location=(0, 0, -distance))
    if occluder:
        box("occluder", (0.5, 0, -distance + 2.0), (2.0, 2.0, 4.0))
    camera = add_camera(scene)
    animate(scene, camera, lambda i: looking_down_minus_z(x=i * step), frames)
    return save(path)


def pan_in_room(path: Path, frames: int = 3, degrees_per_frame: float = 2.0) -> Path:
    """Camera at the centre of a closed room (a box seen from inside), rotating about its own axis."""
    scene = reset()
    box("room", (0, 0, 0), (20, 20, 20))
    camera = add_camera(scene, lens=24)
    base = Euler((math.radians(80), 0, 0)).to_matrix().to_4x4()  # looking almost horizontally
    animate(scene, camera, lambda i: Euler((0, 0, math.radians(degrees_per_frame * i))).to_matrix().to_4x4() @ base, frames)
    return save(path)


def interpenetrating_boxes(path: Path) -> Path:
    """Box A (2 m cube at the origin) pierced by box B (1 m cube centred at x=1): their faces cross on x=1."""
    scene = reset()
    box("A", (0, 0, 0), (2, 2, 2))
    box("B", (1, 0, 0), (1, 1, 1))
    camera = add_camera(scene, lens=35)
    eye = np.array([6.0, -4.0, 3.0])

    def pose(i: int) -> Matrix:
        location = eye + np.array([0.0, 0.05 * i, 0.0])
        rotation = Vector((-location).tolist()).to_track_quat("-Z", "Y")
        return Matrix.Translation(location.tolist()) @ rotation.to_matrix().to_4x4()

    animate(scene, camera, pose, 2)
    return save(path)


def export_glb_with_trajectory(blend: Path, glb: Path, trajectory: Path, frames: int) -> tuple[Path, Path]:
    """Export a .blend's meshes as glTF and its camera path as a trajectory JSON in the glTF (Y-up) frame."""
    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    camera = scene.camera
    to_y_up = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)
    poses = []
    for f in range(frames):
        scene.frame_set(scene.frame_start + (f % (scene.frame_end - scene.frame_start + 1)))
        poses.append((to_y_up @ np.array(camera.matrix_world)).tolist())
    camera.select_set(False)
    bpy.ops.export_scene.gltf(filepath=str(glb), export_format="GLB", use_selection=False, export_cameras=False,
                              export_lights=False)
    fov = camera.data.angle_x
    trajectory.write_text(json.dumps({"axes": "opengl", "world_up": "y", "width": 720, "height": 480,
                                      "fov_x_deg": math.degrees(fov), "camera_to_world": poses}))
    return glb, trajectory


def no_camera(path: Path) -> Path:
    reset()
    box("house", (0, 0, 0), (2, 2, 2))
    return save(path)


def one_frame(path: Path) -> Path:
    scene = reset()
    box("house", (0, 0, 0), (2, 2, 2))
    camera = add_camera(scene)
    animate(scene, camera, lambda i: looking_down_minus_z(z=10.0), 1)
    return save(path)


def camera_only(path: Path) -> Path:
    scene = reset()
    camera = add_camera(scene)
    animate(scene, camera, lambda i: looking_down_minus_z(x=0.1 * i, z=10.0), 3)
    return save(path)


def with_embedded_code(path: Path, marker: Path) -> Path:
    """A valid shot whose registered text block and Python driver would each write `marker` if run."""
    dolly_over_plane(path, frames=2)
    text = bpy.data.texts.new("autorun.py")
    text.write(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('text block ran')\n")
    text.use_module = True  # 'Register': runs on load when auto-run is allowed
    plane = bpy.data.objects["Plane"]
    driver = plane.driver_add("location", 0).driver
    driver.type = "SCRIPTED"
    driver.expression = f"__import__('pathlib').Path({str(marker) + '.driver'!r}).write_text('driver ran') and 0"
    return save(path)


def designer_shot(folder: Path, blend: str = "shot.blend", image: str = "look.png") -> Path:
    """A designer's shot: an 8-frame dolly with an occluder, and a plain 64x48 style image, in `folder`."""
    from PIL import Image

    dolly_over_plane(folder / blend, frames=8, step=0.05, occluder=True)
    Image.new("RGB", (64, 48), (30, 120, 200)).save(folder / image)
    return folder
