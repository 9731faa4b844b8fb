"""Open a shot in Blender without running its code, and read its camera trajectory.

A shot is either a `.blend` with an animated scene camera, or a `.glb`/`.gltf`/`.obj` mesh plus a
trajectory JSON (`vf3d.preprocess.trajectory`). After `load_shot` the current bpy scene holds only the geometry to
render and a camera named `RENDER_CAMERA` that `render.render_frame` poses frame by frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bpy
import numpy as np

from vf3d.common.errors import VF3DInputError
from vf3d.common.limits import check_frame_count, check_render_size
from vf3d.preprocess.blender import quiet_stdout
from vf3d.preprocess.camera import Intrinsics, blender_to_opencv_c2w
from vf3d.preprocess.external_references import external_references
from vf3d.preprocess.trajectory import Trajectory, check_finite_camera, check_moving, load_trajectory_json

MESH_EXTENSIONS = (".glb", ".gltf", ".obj")
SUPPORTED_EXTENSIONS = (".blend", *MESH_EXTENSIONS)
RENDER_CAMERA = "vf3d_render_camera"
GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT"}
SENSOR_WIDTH_MM = 36.0


def disable_autoexec() -> None:
    """Never run Python stored in a file (registered text blocks, drivers): untrusted scenes run no code."""
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False


def _open_blend(path: Path) -> None:
    disable_autoexec()
    try:
        with quiet_stdout():
            bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False, use_scripts=False)
    except RuntimeError as exc:
        raise VF3DInputError(path, f"Blender cannot read this .blend ({str(exc).strip().splitlines()[-1]})") from None


def _import_mesh(path: Path) -> None:
    disable_autoexec()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    disable_autoexec()
    try:
        with quiet_stdout():
            if path.suffix.lower() == ".obj":
                result = bpy.ops.wm.obj_import(filepath=str(path))
            else:
                result = bpy.ops.import_scene.gltf(filepath=str(path))
    except RuntimeError as exc:
        raise VF3DInputError(path, f"Blender cannot import this file ({str(exc).strip().splitlines()[-1]})") from None
    if "FINISHED" not in result:
        raise VF3DInputError(path, f"Blender's importer did not finish ({result})")


def _geometry_objects(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return [o for o in scene.objects if o.type in GEOMETRY_TYPES and not o.hide_render]


def _prepare_geometry(scene: bpy.types.Scene, where: Path) -> int:
    """Hide everything that is not renderable geometry, number objects and materials for the index passes.

    Returns the evaluated face count; raises if there is none.
    """
    geometry = _geometry_objects(scene)
    for obj in scene.objects:
        if obj not in geometry:
            obj.hide_render = True  # lights, empties, Line Art / grease pencil, extra cameras: not geometry
    depsgraph = bpy.context.evaluated_depsgraph_get()
    faces = 0
    for index, obj in enumerate(geometry, start=1):
        obj.pass_index = index
        evaluated = obj.evaluated_get(depsgraph)
        try:
            mesh = evaluated.to_mesh()
        except RuntimeError:
            continue
        if mesh is not None:
            faces += len(mesh.polygons)
        evaluated.to_mesh_clear()
    for index, material in enumerate(bpy.data.materials, start=1):
        material.pass_index = index
    if faces == 0:
        raise VF3DInputError(where, "the scene has no renderable geometry (no visible object with faces)")
    return faces


def intrinsics_from_blender(camera: bpy.types.Object, width: int, height: int) -> Intrinsics:
    """Pinhole intrinsics of a Blender camera rendered at width x height, from Blender's own projection.

    Handles sensor fit, lens, shift and aspect exactly as the renderer does (OpenGL projection -> OpenCV K).
    """
    depsgraph = bpy.context.evaluated_depsgraph_get()
    p = np.array(camera.evaluated_get(depsgraph).calc_matrix_camera(depsgraph, x=width, y=height, scale_x=1, scale_y=1))
    return Intrinsics(width, height, float(p[0, 0] * width / 2), float(p[1, 1] * height / 2),
                      float(width / 2 * (1 - p[0, 2])), float(height / 2 * (1 + p[1, 2])))


def _make_render_camera(scene: bpy.types.Scene, intr: Intrinsics, clip: tuple[float, float]) -> bpy.types.Object:
    data = bpy.data.cameras.new(RENDER_CAMERA)
    data.type = "PERSP"
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_WIDTH_MM
    data.lens = intr.fx * SENSOR_WIDTH_MM / intr.width
    data.shift_x = (intr.width / 2 - intr.cx) / intr.width
    data.shift_y = (intr.cy - intr.height / 2) / intr.width
    data.clip_start, data.clip_end = clip
    camera = bpy.data.objects.new(RENDER_CAMERA, data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    rebuilt = intrinsics_from_blender(camera, intr.width, intr.height)
    if not np.allclose(
        [rebuilt.fx, rebuilt.fy, rebuilt.cx, rebuilt.cy], [intr.fx, intr.fy, intr.cx, intr.cy], atol=1e-3
    ):
        raise RuntimeError(f"render camera does not reproduce the intrinsics: {rebuilt} != {intr}")
    return camera


def _blend_trajectory(path: Path, scene: bpy.types.Scene, width: int, height: int) -> tuple[Trajectory, tuple[float, float]]:
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise VF3DInputError(path, f"scene '{scene.name}' has no active camera (set one with Scene > Camera)")
    if camera.data.type != "PERSP":
        raise VF3DInputError(path, f"camera '{camera.name}' is {camera.data.type}; only perspective cameras are supported")
    frames = tuple(range(scene.frame_start, scene.frame_end + 1, max(scene.frame_step, 1)))
    check_frame_count(path, len(frames))  # before evaluating the camera at every frame
    poses, intrinsics = [], []
    for frame in frames:
        scene.frame_set(frame)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        # The evaluated matrix includes constraints (FOLLOW_PATH, TRACK_TO), parents and drivers.
        world = np.array(camera.evaluated_get(depsgraph).matrix_world)
        intrinsics.append(intrinsics_from_blender(camera, width, height))
        check_finite_camera(world, intrinsics[-1], path, frame)  # a NaN key: one line naming the frame
        poses.append(blender_to_opencv_c2w(world))
    c2w = np.stack(poses) if poses else np.zeros((0, 4, 4))
    check_moving(c2w, path)
    k0 = intrinsics[0]
    for frame, k in zip(frames, intrinsics):
        if not np.allclose([k.fx, k.cx, k.cy], [k0.fx, k0.cx, k0.cy], rtol=1e-5):
            raise VF3DInputError(path, f"camera '{camera.name}' changes focal length or shift at frame {frame}; "
                                       "animated intrinsics are not supported")
    return Trajectory(k0, c2w, frames), (camera.data.clip_start, camera.data.clip_end)


def _json_trajectory(path: Path, trajectory_path: Path, width: int, height: int) -> Trajectory:
    traj = load_trajectory_json(trajectory_path)
    k = traj.intrinsics
    if abs(k.width / k.height - width / height) > 1e-3:
        raise VF3DInputError(trajectory_path, f"intrinsics are for {k.width}x{k.height}; cannot render at {width}x{height} "
                                              f"(a different aspect ratio) - pass a size with aspect {k.width}:{k.height}")
    return Trajectory(k.scaled_to(width, height), traj.c2w, traj.source_frames)


def load_shot(source: str | Path, width: int, height: int, trajectory: str | Path | None = None,
              library_paths: Sequence[str | Path] = ()) -> Trajectory:
    """Load a shot into the current bpy session and return its trajectory at width x height.

    Args:
        source: a `.blend` (its scene camera and frame range are the trajectory) or a `.glb`/`.gltf`/`.obj`.
        width, height: render size in pixels.
        trajectory: trajectory JSON, required for mesh files and not allowed for `.blend`.
        library_paths: folders besides the shot's own from which the shot may read the files it references
            (`vf3d.preprocess.external_references`); a reference anywhere else is refused before Blender
            opens the file.
    """
    source = Path(source)
    check_render_size(source, width, height)
    if not source.is_file():
        raise VF3DInputError(source, "scene file not found")
    suffix = source.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise VF3DInputError(source, f"unsupported scene file type '{suffix}' (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    if suffix == ".blend":
        if trajectory is not None:
            raise VF3DInputError(trajectory, "a .blend carries its own camera; a trajectory JSON is only for .glb/.obj")
        external_references(source, library_paths)  # Blender opens every link: check first
        _open_blend(source)
        scene = bpy.context.scene
        traj, clip = _blend_trajectory(source, scene, width, height)
    else:
        if trajectory is None:
            raise VF3DInputError(source, "a mesh file needs a camera trajectory JSON (--trajectory)")
        traj = _json_trajectory(source, Path(trajectory), width, height)
        external_references(source, library_paths)  # the importers read every buffer, image, mtl: check first
        _import_mesh(source)
        scene = bpy.context.scene
        clip = (0.01, 1.0e5)
    _prepare_geometry(scene, source)
    camera = _make_render_camera(scene, traj.intrinsics, clip)
    camera.hide_render = False
    return traj
