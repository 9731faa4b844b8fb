"""The official preprocessing's own renderer: Workbench normal matcap + Line Art strokes (for comparisons).

The official code renders every frame's HED input with BLENDER_WORKBENCH (fork `assets/exampleA/town.blend`,
text block "Text", lines 183-207) using the display shading and the "Line Art" object saved in town.blend. This
module sets a loaded scene up the same way, so that our G-buffer composite (`vf3d.preprocess.hed_input`) can be
compared with the real thing (`scripts/compare_hed_input.py`, `tests/test_hed_input.py`). Workbench needs a GL
context (headless: Mesa through EGL, `libegl1`); without one Blender aborts the process, so callers run it in a
subprocess. Measured on this 2-core machine: 1.9-2.2 s per 1080x720 frame, after a first frame of ~6 s.
"""

from __future__ import annotations

import bpy

LINE_ART_RADIUS = 0.0175
"""town.blend's LINEART modifier `radius` (Blender 3.1's thickness, converted by bpy 5.0)."""
THICKNESS_FACTOR = 0.4
"""town.blend's THICKNESS modifier `thickness_factor`."""
CREASE_THRESHOLD = 2.4434609413146973
"""town.blend's LINEART `crease_threshold` in radians (140 degrees)."""


def configure_workbench(scene: bpy.types.Scene, width: int, height: int) -> None:
    """Workbench with town.blend's saved display shading, film transparent saved as RGB PNG (lines 155-156,
    184-186 of the text block), every surface's viewport colour 0.8 (`projector_mat` on every object)."""
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure, scene.view_settings.gamma = 0.0, 1.0
    shading = scene.display.shading
    shading.light = "MATCAP"
    shading.studio_light = "check_normal+y.exr"
    shading.color_type = "MATERIAL"
    shading.show_cavity = True
    shading.cavity_type = "BOTH"
    shading.cavity_ridge_factor = shading.cavity_valley_factor = 1.0
    shading.curvature_ridge_factor = shading.curvature_valley_factor = 0.0
    shading.show_specular_highlight = True
    shading.show_shadows = shading.show_xray = shading.show_object_outline = shading.use_dof = False
    shading.show_backface_culling = False
    scene.display.render_aa = "8"
    plain = bpy.data.materials.new("vf3d_projector_mat")  # viewport colour 0.8, as projector_mat
    plain.diffuse_color = (0.8, 0.8, 0.8, 1.0)
    for obj in scene.objects:
        if obj.type == "MESH" and not obj.hide_render:
            obj.data.materials.clear()
            obj.data.materials.append(plain)


def add_line_art(scene: bpy.types.Scene) -> bpy.types.Object:
    """A Line Art grease pencil over the whole scene with town.blend's modifier settings (contour, crease 140
    degrees, material, edge marks, intersection, loose; radius 0.0175 x thickness 0.4; white strokes)."""
    data = bpy.data.grease_pencils.new("vf3d_line_art")
    data.stroke_depth_order = "2D"  # as town.blend: strokes drawn over the surfaces they lie on
    layer = data.layers.new("Lines")
    layer.use_lights = False
    layer.frames.new(scene.frame_current)
    material = bpy.data.materials.new("vf3d_line_art_white")
    bpy.data.materials.create_gpencil_data(material)
    material.grease_pencil.color = (1.0, 1.0, 1.0, 1.0)
    data.materials.append(material)
    obj = bpy.data.objects.new("vf3d_line_art", data)
    scene.collection.objects.link(obj)
    line_art = obj.modifiers.new("Line Art", "LINEART")
    line_art.source_type = "SCENE"
    line_art.target_layer = "Lines"
    line_art.target_material = material
    for flag in ("use_contour", "use_crease", "use_material", "use_edge_mark", "use_intersection", "use_loose",
                 "use_crease_on_sharp", "use_clip_plane_boundaries", "use_object_instances"):
        setattr(line_art, flag, True)
    line_art.use_crease_on_smooth = False
    line_art.crease_threshold = CREASE_THRESHOLD
    line_art.radius = LINE_ART_RADIUS
    line_art.stroke_depth_offset = 0.05
    thickness = obj.modifiers.new("Thickness", "GREASE_PENCIL_THICKNESS")
    thickness.thickness_factor = THICKNESS_FACTOR
    return obj
