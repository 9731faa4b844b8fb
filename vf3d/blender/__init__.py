"""Blender as a data parser: every line of bpy code in vf3d lives in this package.

`scene_io` opens or imports a shot safely and reads its camera; `render` renders the per-frame
passes (world position, normal, object/material index, depth) that every guidance map is computed from.
"""
