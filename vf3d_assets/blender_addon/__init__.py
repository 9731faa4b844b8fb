"""The Blender add-on shipped with vf3d (`vf3d blender-addon --out DIR` writes it as an installable zip).

Its package `vf3d_render` runs inside Blender (bpy and the standard library only); vf3d never imports it.
"""
