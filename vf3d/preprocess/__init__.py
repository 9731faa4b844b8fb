"""Preprocessing (paper Sec. 3.1): from a shot to structural guidance and flows.

A shot (`.blend`, or `.glb`/`.obj` with a trajectory JSON) is opened with Blender and rendered into
G-buffers; from them come the edge maps h_i (silhouette, crease, object boundary, intersection), planar
depth, and the reprojection flows f_i->i+1 and f_N->0 with valid masks.

Entry points:
- `guidance.preprocess(source, out, ...)`: the whole stage, written atomically to one folder;
  `guidance.describe_shot` reads a shot's cameras and segments without rendering.
- `trajectory` (trajectory JSON, `Trajectory`), `camera` (intrinsics, axis conventions, `split_segments`).
- `edges.edge_map`, `flows.reprojection_flow`, `depth.planar_depth`: the per-frame maths on `passes.GBuffer`.
- `blender`: every line of bpy code of the pipeline (`scene_io.load_shot`, `render`, and `textured`, the
  textured renders GGI training uses).
"""
