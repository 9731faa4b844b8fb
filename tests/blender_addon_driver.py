"""Drive the vf3d Blender add-on headless, as a designer would in the UI (run by tests/test_ui_browser.py).

    python blender_addon_driver.py ADDON_ZIP SHOT.blend STYLE.png SERVER VF3D_COMMAND OUT.json CATALOG.json

Installs the zip with Blender's own add-on installer (into BLENDER_USER_RESOURCES), opens the shot, presses the
panel's button in the ways that must fail (one-line reports) and then for real, checks the run's status as the
panel's timer does until it is over, and writes what it saw to OUT.json.
"""

import json
import sys
import time
from pathlib import Path

import bpy

DEAD_SERVER = "http://127.0.0.1:9"  # the discard port: nothing listens


def press(operator) -> str:
    """Run an operator; '' when it finished, else its one-line error report."""
    try:
        operator()
    except RuntimeError as exc:
        return str(exc).strip()
    return ""


def main(addon_zip: str, shot: str, style: str, server: str, command: str, out: str, catalog: str) -> None:
    bpy.ops.preferences.addon_install(filepath=addon_zip)
    bpy.ops.preferences.addon_enable(module="vf3d_render")
    bpy.ops.wm.open_mainfile(filepath=shot)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
    settings = scene.vf3d
    settings.command = command
    seen = {"panel": hasattr(bpy.types, "VF3D_PT_panel"), "errors": {}}

    settings.server = server
    seen["errors"]["no style image"] = press(bpy.ops.vf3d.render)
    settings.style_image = style
    settings.server = DEAD_SERVER
    seen["errors"]["instance not running"] = press(bpy.ops.vf3d.render)
    settings.server = server
    camera = scene.camera
    scene.camera = None
    seen["errors"]["no camera"] = press(bpy.ops.vf3d.render)
    scene.camera = camera
    action = camera.animation_data.action
    camera.animation_data.action = None
    seen["errors"]["no animation"] = press(bpy.ops.vf3d.render)
    camera.animation_data.action = action
    seen["registered_after_errors"] = Path(catalog).exists()  # nothing was registered by a refused press

    addon = sys.modules["vf3d_render"]
    seen["render"] = press(bpy.ops.vf3d.render)
    seen["statuses"], seen["backfill_ids"] = [settings.status], []
    deadline = time.time() + 900
    while addon.in_progress(scene) and time.time() < deadline:  # what the panel's timer does every few seconds
        time.sleep(3)
        seen["check"] = press(bpy.ops.vf3d.status)
        if settings.status != seen["statuses"][-1]:
            seen["statuses"].append(settings.status)
        if settings.backfill_id and settings.backfill_id not in seen["backfill_ids"]:
            seen["backfill_ids"].append(settings.backfill_id)
    seen["video"] = settings.video
    shown = bpy.data.scenes.get(f"vf3d {settings.scene_key}")
    strips = [] if shown is None or shown.sequence_editor is None else list(shown.sequence_editor.strips)
    seen["strips"] = [{"type": s.type, "filepath": bpy.path.abspath(s.filepath), "frames": s.frame_final_duration}
                      for s in strips]
    editor = scene.sequence_editor  # the designer's scene is left alone
    seen["shot_scene_strips"] = 0 if editor is None else len(editor.strips)
    Path(out).write_text(json.dumps(seen, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:8])
