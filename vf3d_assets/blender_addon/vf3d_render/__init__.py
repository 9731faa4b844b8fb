"""Render with vf3d: a panel in Blender's Output properties that sends the current shot to a running vf3d.

Choose a style reference image (and an optional post-prompt), press "Render with vf3d": the add-on checks the
scene (an active, animated camera) and that a vf3d instance answers (`vf3d ui`, the Dagster webserver on
127.0.0.1), saves a copy of the scene into vf3d's working folder (`<VF3D_HOME>/shots/<key>.blend`), registers it
with `vf3d register`, reloads the code location so the new partition exists, and launches a backfill of the
stages that are missing or stale through the webserver's GraphQL API (for a shot new to the running instance,
once the Dagster daemon has read the reloaded code: `DAEMON_REREAD_SECONDS`). The panel shows the run's status;
when it is done the mp4 is loaded into the Video Sequencer of a new scene "vf3d <key>" (the designer's scene is
left as it was). Errors are one-line reports.

Standard library and bpy only: nothing to install inside Blender. Written by `vf3d blender-addon --out DIR`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import bpy

bl_info = {
    "name": "vf3d: Render with VideoFrom3D",
    "author": "vf3d",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Properties > Output > vf3d",
    "description": "Send the current shot and a style image to a running vf3d and load the video it makes",
    "category": "Render",
}

LOCATION = "vf3d_assets"
"""The code location `vf3d ui` serves (pyproject's [tool.dagster] code_location_name)."""
POLL_SECONDS = 3.0
DONE_OK = {"COMPLETED_SUCCESS", "COMPLETED"}
DONE_FAILED = {"FAILED", "COMPLETED_FAILED", "CANCELED", "FAILING", "CANCELING"}
DAEMON_REREAD_SECONDS = 75.0
"""How long after a reload the Dagster daemon surely holds the reloaded code. The webserver reloads at once, but
the daemon, which runs backfills, rereads its code locations only every 60 s, checked every 5 s
(dagster/_daemon/controller.py: RELOAD_WORKSPACE_INTERVAL, THREAD_CHECK_INTERVAL), plus the time a reread takes.
A backfill over a partition the reload added, launched before that, fails at once with `STALE_DAEMON`."""
STALE_DAEMON = "have been removed since this backfill was stored"
"""Dagster's error (dagster/_core/execution/asset_backfill.py) for a backfill whose partitions its daemon's code
lacks: for a shot just registered, the daemon has not reread the code yet, and the launch is retried."""
RELAUNCHES = 2


class VF3DError(Exception):
    """One line for the designer, shown as Blender's error report."""


# -- the running vf3d instance: its GraphQL API ----------------------------------------------------------------


def graphql(server: str, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    """POST one GraphQL request to the webserver; connection problems and GraphQL errors are one line."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(server.rstrip("/") + "/graphql", data=body,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise VF3DError(f"no vf3d instance answers at {server} ({reason}): start it with `vf3d ui`") from None
    if answer.get("errors"):
        raise VF3DError(f"vf3d at {server}: {answer['errors'][0].get('message', answer['errors'][0])}")
    return answer["data"]


def check_server(server: str) -> None:
    """A vf3d instance serving the code location answers at `server`."""
    data = graphql(server, "{ workspaceOrError { __typename ... on Workspace { locationEntries { name } } } }",
                   timeout=10)
    names = [entry["name"] for entry in data["workspaceOrError"].get("locationEntries", [])]
    if LOCATION not in names:
        raise VF3DError(f"the Dagster instance at {server} does not serve vf3d (locations: {', '.join(names)}); "
                        "start vf3d's with `vf3d ui`")


RELOAD = """mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename ... on Error { message }
  ... on WorkspaceLocationEntry { locationOrLoadError { __typename ... on PythonError { message } } }
} }"""

LAUNCH = """mutation Launch($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on Error { message } ... on LaunchBackfillSuccess { backfillId }
} }"""

STATUS = """query Status($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on Error { message }
  ... on PartitionBackfill { status error { message }
    assetBackfillData { assetBackfillStatuses {
      ... on AssetPartitionsStatusCounts { numPartitionsTargeted numPartitionsMaterialized }
      ... on UnpartitionedAssetStatus { materialized } } } }
} }"""


KNOWN = """query Known($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } partitionKeys } }"""


def _problem(result: dict) -> str | None:
    """The message of a GraphQL error union member, or None for the success type."""
    if result["__typename"] in ("LaunchBackfillSuccess", "WorkspaceLocationEntry", "PartitionBackfill"):
        return None
    return result.get("message") or f"{result['__typename']}: {json.dumps(result)}"


def reload_location(server: str) -> None:
    """Reload vf3d's code location so that the shot just registered is one of its partitions."""
    entry = graphql(server, RELOAD, {"name": LOCATION}, timeout=300)["reloadRepositoryLocation"]
    problem = _problem(entry) or (entry["locationOrLoadError"] or {}).get("message")
    if problem:
        raise VF3DError(f"vf3d could not reload its code location: {problem.strip().splitlines()[-1]}")


def new_partitions(server: str, stages: list[dict]) -> bool:
    """Some stage targets an asset or a partition the running code location does not have yet."""
    keys = [{"path": [stage["asset"]]} for stage in stages]
    known = {tuple(node["assetKey"]["path"]): set(node["partitionKeys"])
             for node in graphql(server, KNOWN, {"keys": keys})["assetNodes"]}
    return any((stage["asset"],) not in known
               or (stage["partition"] is not None and stage["partition"] not in known[(stage["asset"],)])
               for stage in stages)


def launch_backfill(server: str, stages: list[dict], shot: str) -> str:
    """One backfill over the stages' asset partitions (Dagster orders them along the graph); its id."""
    params = {"partitionsByAssets": [
        {"assetKey": {"path": [stage["asset"]]},
         "partitions": None if stage["partition"] is None else {"range": {"start": stage["partition"],
                                                                         "end": stage["partition"]}}}
        for stage in stages],
        "title": f"vf3d shot {shot}", "tags": [{"key": "vf3d/shot", "value": shot}]}
    result = graphql(server, LAUNCH, {"params": params})["launchPartitionBackfill"]
    problem = _problem(result)
    if problem:
        raise VF3DError(f"vf3d could not launch the run: {problem.strip().splitlines()[-1]}")
    return result["backfillId"]


def backfill_status(server: str, backfill_id: str) -> tuple[str, int, int, str]:
    """(status, stages done, stages in all, error line) of a backfill."""
    result = graphql(server, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    problem = _problem(result)
    if problem:
        raise VF3DError(f"vf3d run {backfill_id}: {problem.strip().splitlines()[-1]}")
    rows = (result.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []
    done = sum(row.get("numPartitionsMaterialized", 1 if row.get("materialized") else 0) for row in rows)
    total = sum(row.get("numPartitionsTargeted", 1) for row in rows)
    error = ((result.get("error") or {}).get("message") or "").strip().splitlines()
    return result["status"], done, total, error[-1] if error else ""


# -- the scene and the vf3d command ----------------------------------------------------------------------------


def key_from_name(name: str) -> str:
    """The key vf3d derives from a file name (vf3d.benchmark.user_catalog.key_from_name)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "shot"


def _is_animated(obj) -> bool:
    """The object or one of its parents has keyframes or drivers."""
    while obj is not None:
        data = obj.animation_data
        if data is not None and (data.action is not None or len(data.drivers) > 0):
            return True
        obj = obj.parent
    return False


def check_scene(scene) -> None:
    """What vf3d needs from the scene, checked before anything is saved or sent."""
    camera = scene.camera
    if camera is None:
        raise VF3DError(f"scene '{scene.name}' has no active camera: add one and make it the scene camera")
    if scene.frame_end <= scene.frame_start:
        raise VF3DError(f"scene '{scene.name}' has a single frame ({scene.frame_start}): set a frame range")
    if not _is_animated(camera):
        raise VF3DError(f"camera '{camera.name}' is not animated: key its motion over the frame range "
                        f"{scene.frame_start}-{scene.frame_end}")


def style_image(settings) -> Path:
    if not settings.style_image:
        raise VF3DError("choose a style reference image first")
    path = Path(bpy.path.abspath(settings.style_image))
    if not path.is_file():
        raise VF3DError(f"style image not found: {path}")
    return path


def vf3d(settings, *argv: str, timeout: float = 900) -> str:
    """Run the vf3d command; its stdout, or its one-line error as a `VF3DError`."""
    command = [bpy.path.abspath(settings.command) if os.sep in settings.command else settings.command, *argv]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise VF3DError(f"the vf3d command was not found ({settings.command}): set its path in the panel") from None
    except subprocess.TimeoutExpired:
        raise VF3DError(f"`vf3d {argv[0]}` did not finish in {timeout:.0f} s") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or [f"exit status {result.returncode}"]
        raise VF3DError(f"vf3d {argv[0]}: {lines[-1].removeprefix('error: ')}")
    return result.stdout


def save_shot_copy(shots_dir: Path, key: str) -> tuple[Path, Path | None]:
    """Save a copy of the open file as `<shots_dir>/<key>.blend` (the open file stays the one being edited);
    the copy it replaces is kept aside until the registration succeeds. Returns (copy, kept-aside or None)."""
    shots_dir.mkdir(parents=True, exist_ok=True)
    copy = shots_dir / f"{key}.blend"
    previous = None
    if copy.exists():
        previous = copy.with_name(f"{key}.previous.blend")
        os.replace(copy, previous)
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(copy), copy=True, relative_remap=True, check_existing=False)
    except RuntimeError as exc:
        if previous is not None:
            os.replace(previous, copy)
        raise VF3DError(f"could not save a copy of the scene to {copy}: {str(exc).strip()}") from None
    return copy, previous


def register_shot(scene, settings) -> dict:
    """Save a copy and register it with `vf3d register`: its JSON (scene, style, partition, video, stages)."""
    image = style_image(settings)
    home = Path(vf3d(settings, "config", "--home", timeout=120).strip().splitlines()[-1])
    name = Path(bpy.data.filepath).stem if bpy.data.filepath else scene.name
    key = key_from_name(settings.key or name)
    copy, previous = save_shot_copy(home / "shots", key)
    render = scene.render
    scale = render.resolution_percentage / 100
    argv = ["register", str(copy), "--style", str(image), "--key", key,
            "--width", str(round(render.resolution_x * scale)), "--height", str(round(render.resolution_y * scale))]
    if settings.post_prompt:
        argv += ["--post-prompt", settings.post_prompt]
    if settings.replace:
        argv.append("--replace")
    try:
        plan = json.loads(vf3d(settings, *argv).strip().splitlines()[-1])
    except BaseException:
        if previous is not None:  # registration refused: the copy it knew stays as it was
            os.replace(previous, copy)
        raise
    if previous is not None:
        previous.unlink()
    return plan


def load_video(scene_key: str, video: Path) -> bpy.types.Scene:
    """Put the mp4 into the Video Sequencer of scene 'vf3d <key>' (made or reused; the shot's scene untouched)."""
    name = f"vf3d {scene_key}"
    target = bpy.data.scenes.get(name) or bpy.data.scenes.new(name)
    editor = target.sequence_editor or target.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    for strip in list(strips):
        strips.remove(strip)
    strip = strips.new_movie(name=video.stem, filepath=str(video), channel=1, frame_start=1)
    target.frame_start, target.frame_end = 1, strip.frame_final_end - 1
    target.render.fps = max(1, round(strip.fps))
    window = getattr(bpy.context, "window", None)
    if window is not None:  # in the UI: show it
        window.scene = target
    return target


# -- Blender UI ------------------------------------------------------------------------------------------------


class VF3DSettings(bpy.types.PropertyGroup):
    style_image: bpy.props.StringProperty(name="Style image", subtype="FILE_PATH",
                                          description="The style reference image")
    post_prompt: bpy.props.StringProperty(name="Post-prompt", description="Text added to the style's prompt")
    key: bpy.props.StringProperty(name="Shot name", description="The shot's key in vf3d (empty: the file name)")
    replace: bpy.props.BoolProperty(name="Replace registration", default=False,
                                    description="Register the shot anew when its settings changed (render size)")
    server: bpy.props.StringProperty(name="vf3d UI", default="http://127.0.0.1:3000",
                                     description="Where `vf3d ui` serves (its GraphQL API)")
    command: bpy.props.StringProperty(name="vf3d command", default="vf3d",
                                      description="The vf3d executable (a path, or a name on PATH)")
    backfill_id: bpy.props.StringProperty(options={"SKIP_SAVE"})
    scene_key: bpy.props.StringProperty(options={"SKIP_SAVE"})
    video: bpy.props.StringProperty(options={"SKIP_SAVE"})
    status: bpy.props.StringProperty(name="Status", options={"SKIP_SAVE"})


@dataclass
class Launch:
    """A shot's stages on their way to one backfill, launched once `not_before` (time.monotonic) has passed."""

    stages: list[dict]
    shot: str
    not_before: float
    relaunches: int = 0


LAUNCHES: dict[str, Launch] = {}
"""Scene name -> the launch of its run, from the press until the run is over (runtime state, like `backfill_id`)."""


def in_progress(scene) -> bool:
    """A run of this scene is waiting to be launched or running."""
    return scene.name in LAUNCHES


def _poll_timer(scene_name: str):
    """In the UI: check the run every few seconds until it is done (headless callers run the operator)."""

    def tick() -> float | None:
        scene = bpy.data.scenes.get(scene_name)
        if scene is None or not in_progress(scene):
            return None
        try:
            done = check_run(scene)
        except VF3DError as exc:
            scene.vf3d.status = f"error: {exc}"
            return None
        return None if done else POLL_SECONDS

    return tick


def check_run(scene) -> bool:
    """Launch the run when it is due, update the status line, load the video when the run succeeded.
    True when the run is over; a failed run is a `VF3DError` (and over)."""
    try:
        done = _advance(scene, LAUNCHES[scene.name])
    except VF3DError:
        LAUNCHES.pop(scene.name, None)
        raise
    if done:
        LAUNCHES.pop(scene.name, None)
    return done


def _advance(scene, launch: Launch) -> bool:
    settings = scene.vf3d
    if not settings.backfill_id:
        if time.monotonic() < launch.not_before:
            settings.status = "waiting for the Dagster daemon to read the new shot (it rereads the code every minute)"
            return False
        settings.backfill_id = launch_backfill(settings.server, launch.stages, launch.shot)
        settings.status = f"running: 0/{len(launch.stages)} stages done"
        return False
    status, done, total, error = backfill_status(settings.server, settings.backfill_id)
    if status in DONE_OK:
        settings.status = f"done: {settings.video}"
        settings.backfill_id = ""
        load_video(settings.scene_key, Path(settings.video))
        return True
    if status in DONE_FAILED:
        backfill_id, settings.backfill_id = settings.backfill_id, ""
        if STALE_DAEMON in error and launch.relaunches < RELAUNCHES:
            launch.relaunches += 1
            launch.not_before = time.monotonic() + DAEMON_REREAD_SECONDS
            settings.status = "waiting for the Dagster daemon to read the new shot (it had not yet: launching again)"
            return False
        settings.status = f"failed ({status})"
        raise VF3DError(f"the vf3d run failed ({status}{': ' + error if error else ''}); "
                        f"its runs and logs: {settings.server}/runs/b/{backfill_id}")
    settings.status = f"running: {done}/{total} stages done"
    return False


class VF3D_OT_render(bpy.types.Operator):
    """Save a copy of this scene, register it with vf3d and make its video on the running vf3d"""

    bl_idname = "vf3d.render"
    bl_label = "Render with vf3d"

    def execute(self, context):
        scene, settings = context.scene, context.scene.vf3d
        try:
            check_scene(scene)
            style_image(settings)
            check_server(settings.server)
            plan = register_shot(scene, settings)
            settings.scene_key, settings.video = plan["scene"], plan["video"]
            if not plan["stages"]:
                settings.status = f"up to date: {plan['video']}"
                load_video(plan["scene"], Path(plan["video"]))
                self.report({"INFO"}, f"vf3d: nothing changed; video loaded from {plan['video']}")
                return {"FINISHED"}
            new_shot = new_partitions(settings.server, plan["stages"])
            reload_location(settings.server)
            wait = DAEMON_REREAD_SECONDS if new_shot else 0.0
            LAUNCHES[scene.name] = Launch(plan["stages"], plan["partition"], time.monotonic() + wait)
            settings.backfill_id = ""
            check_run(scene)  # launches now, unless the daemon must read the new shot first
        except VF3DError as exc:
            settings.status = f"error: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        stages = len(plan["stages"])
        self.report({"INFO"}, f"vf3d: {stages} stage(s) launched ({settings.server}/runs/b/{settings.backfill_id})"
                    if settings.backfill_id else
                    f"vf3d: {stages} stage(s) launch within {wait:.0f} s, once the Dagster daemon has read the new shot")
        if not bpy.app.background:
            bpy.app.timers.register(_poll_timer(scene.name), first_interval=POLL_SECONDS)
        return {"FINISHED"}


class VF3D_OT_status(bpy.types.Operator):
    """Check the vf3d run of this scene now; load its video when it is done"""

    bl_idname = "vf3d.status"
    bl_label = "Check vf3d run"

    @classmethod
    def poll(cls, context):
        return in_progress(context.scene)

    def execute(self, context):
        try:
            check_run(context.scene)
        except VF3DError as exc:
            context.scene.vf3d.status = f"error: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class VF3D_PT_panel(bpy.types.Panel):
    bl_label = "vf3d"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"

    def draw(self, context):
        settings = context.scene.vf3d
        layout = self.layout
        layout.prop(settings, "style_image")
        layout.prop(settings, "post_prompt")
        layout.prop(settings, "key")
        layout.prop(settings, "replace")
        layout.operator(VF3D_OT_render.bl_idname, icon="RENDER_ANIMATION")
        if in_progress(context.scene):
            layout.operator(VF3D_OT_status.bl_idname, icon="FILE_REFRESH")
        if settings.status:
            layout.label(text=settings.status)
        box = layout.box()
        box.prop(settings, "server")
        box.prop(settings, "command")


CLASSES = (VF3DSettings, VF3D_OT_render, VF3D_OT_status, VF3D_PT_panel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.vf3d = bpy.props.PointerProperty(type=VF3DSettings)


def unregister() -> None:
    del bpy.types.Scene.vf3d
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
