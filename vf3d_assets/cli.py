"""`vf3d` command line: preprocess a shot, run the demo through Dagster, start the UI.

Errors in user input print one line (`error: <file>: <problem>`) and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from vf3d.common.errors import VF3DInputError, input_error_behind
from vf3d.preprocess.guidance import DEFAULT_HEIGHT, DEFAULT_WIDTH


def _preprocess(args: argparse.Namespace) -> None:
    from vf3d.preprocess.guidance import preprocess

    stats = preprocess(args.scene, args.out, args.width, args.height, args.trajectory,
                       library_paths=args.allow_library)
    print(json.dumps({
        "out": str(args.out), "frames": stats.num_frames, "segments": stats.segments,
        "render_seconds": round(stats.render_seconds, 2), "flow_seconds": round(stats.flow_seconds, 2),
        "total_seconds": round(stats.total_seconds, 2),
    }))


def _deployment(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    """Resolve and check the deployment settings (`--profile` first, if the command has it)."""
    from resources.deployment import SETTINGS, check_deployment

    if getattr(args, "profile", None):
        os.environ[next(s.env for s in SETTINGS if s.key == "profile")] = args.profile
    return check_deployment()


def _demo(args: argparse.Namespace) -> None:
    from vf3d_assets.instance import ensure_dagster_home, open_instance

    if _deployment(args)["profile"][0] == "full":  # every checkpoint the demo reads, before any work starts
        weights_dir, rows = _weight_rows()
        missing = [r["component"] for r in rows
                   if not r["present"] and not r["component"].startswith(ONLY_FOR_TRAINING_ON_VIDEOS)]
        if missing:
            raise VF3DInputError(weights_dir, f"{len(missing)} full-profile component(s) missing "
                                              f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                                              "`vf3d check-weights` lists where each was looked for")
    home = ensure_dagster_home()
    from dagster import AssetKey

    from vf3d_assets.assets import ALL_ASSETS
    from vf3d_assets.definitions import defs, methods
    from vf3d_assets.partitions import catalog
    from vf3d_assets.progress import StageDisplay
    from vf3d_assets.runner import run_stages, shot_stages
    from vf3d_assets.staleness import check_partition_inputs

    scene_key = args.scene or (catalog.demo[0] if catalog.demo else sorted(catalog.scenes)[0])
    style_key = args.style or (catalog.demo[1] if catalog.demo else sorted(catalog.styles)[0])
    catalog.scene(scene_key), catalog.style(style_key)  # a bad key fails here, with the list of known keys
    check_partition_inputs(catalog, scene_key, style_key)  # every input file, before any work starts
    instance = open_instance()
    full = os.environ.get("VF3D_PROFILE") == "full"
    if full and instance.get_latest_materialization_event(AssetKey("ggi_weights")) is None:
        # training GGI is the paper's 10,000-step run on DL3DV videos, not a demo step: import the released weights
        raise VF3DInputError("ggi_weights", "the full demo samples with GGI weights and none are materialized: "
                                            "import the official checkpoint first (materialize ggi_weights with "
                                            "config pretrained: /path/to/checkpoint-1350; README)")
    # The same assets the UI materializes, in graph order, on the demo partition, each only if missing or stale.
    stages = shot_stages(scene_key, style_key, methods, train_ggi=None if full else {}, report=True)
    with StageDisplay(verbose=args.verbose) as display:
        run_stages(stages, instance, ALL_ASSETS, defs.resources, display, verbose=args.verbose)
    display.print_summary()
    print(f"the video: {defs.resources['artifacts'].path('video', f'{scene_key}|{style_key}') / 'video.mp4'}")
    report = defs.resources['artifacts'].path('benchmark_report', 'all')
    print(f"the report: {report / 'benchmark.md'}")
    print(f"runs, pictures and metadata are in the instance at {home}; open them with `vf3d ui`")
    if os.environ.get("VF3D_PROFILE") == "tiny":
        print("note: this ran the tiny profile: every model was built from a config with random weights, so the "
              "video and anchors are noise by design.\n"
              "what it proved: every stage (guidance renders, style LoRA, GGI training, anchors, video, metrics, "
              f"report) ran through Dagster and wrote its files and metadata, for {len(methods)} method(s) "
              f"({', '.join(methods)}), each a row of the report.\n"
              "with real weights: put the checkpoints in place (`vf3d check-weights` lists them), then "
              "`vf3d demo --profile full` or VF3D_PROFILE=full (README: \"Run with real weights\").")
    print(f"the results page: {(report / 'index.html').as_uri()}")  # last: the one line to click


SHOT_SUFFIXES = (".blend", ".glb", ".gltf", ".obj")


def _shot_request(args: argparse.Namespace):
    """Check the shot, trajectory, style image and size before anything is registered or run."""
    from vf3d.benchmark.user_catalog import ShotRequest, key_from_name
    from vf3d.common.limits import RENDER_MULTIPLE, check_reference_image, check_render_size
    from vf3d.preprocess.guidance import describe_shot

    shot = args.shot.resolve()
    if not shot.is_file():
        raise VF3DInputError(shot, "shot file not found")
    if shot.suffix.lower() not in SHOT_SUFFIXES:
        raise VF3DInputError(shot, f"not a shot file: expected one of {', '.join(SHOT_SUFFIXES)}")
    if shot.suffix.lower() != ".blend" and args.trajectory is None:
        raise VF3DInputError(shot, "a mesh file needs --trajectory (camera poses JSON; README: Shots)")
    check_reference_image(args.style)
    width, height = check_render_size(shot, args.width, args.height, RENDER_MULTIPLE)
    key = args.key or key_from_name(shot.stem)
    prompts = tuple(p.strip() for p in args.post_prompt if p.strip())
    post_prompt = prompts[0] if len(prompts) == 1 else (prompts or None)  # several: a style change over time
    request = ShotRequest(key, shot, args.style.resolve(), args.trajectory, post_prompt, width, height)
    # camera, animation, trajectory at the size asked for (a trajectory's aspect must match it): one line, before any work
    describe_shot(shot, width, height, args.trajectory)
    return request


def _register(args: argparse.Namespace) -> tuple[str, str, bytes | None, dict]:
    """Check the inputs, then register the shot and style: (scene key, style key, the catalog's previous bytes or
    None, the resolved deployment)."""
    from vf3d.benchmark.catalog import BENCHMARK_CATALOG, BENCHMARK_CATALOG_ENV, load_catalog
    from vf3d.benchmark.user_catalog import register_shot, user_catalog_path

    resolved = _deployment(args)
    request = _shot_request(args)
    benchmark = load_catalog([Path(os.environ.get(BENCHMARK_CATALOG_ENV, BENCHMARK_CATALOG))])
    catalog_file = user_catalog_path()
    before = catalog_file.read_bytes() if catalog_file.is_file() else None  # bytes: put back exactly as it was
    scene_key, style_key = register_shot(request, set(benchmark.scenes) | set(benchmark.styles), args.replace)
    return scene_key, style_key, before, resolved


def _shot_plan(scene_key: str, style_key: str, full: bool):
    """The instance, the shot's stages, and the definitions (imported after registering, so that the partitions
    include the new shot). Full profile without GGI weights: one line, before any work."""
    from vf3d_assets.instance import open_instance

    instance = open_instance()
    from dagster import AssetKey

    from vf3d_assets.definitions import defs
    from vf3d_assets.runner import shot_stages

    if full and instance.get_latest_materialization_event(AssetKey("ggi_weights")) is None:
        raise VF3DInputError("ggi_weights", "no GGI weights are materialized: import the official checkpoint "
                                            "first (materialize ggi_weights with config pretrained: "
                                            "/path/to/checkpoint-1350; README)")
    # tiny: GGI weights trained on the shot itself when there are none yet (full: imported, never trained here)
    return instance, shot_stages(scene_key, style_key, ("ggi",), None if full else {"scenes": [scene_key]}), defs


def _run(args: argparse.Namespace) -> None:
    import time

    from vf3d.benchmark.user_catalog import provisional_registration

    scene_key, style_key, before, resolved = _register(args)
    with provisional_registration(before):  # a failed or killed run leaves the catalog as it was
        instance, stages, defs = _shot_plan(scene_key, style_key, resolved["profile"][0] == "full")
        from vf3d_assets.assets import ALL_ASSETS
        from vf3d_assets.progress import StageDisplay
        from vf3d_assets.runner import partition_key, run_stages

        started = time.perf_counter()
        with StageDisplay(verbose=args.verbose) as display:
            run_stages(stages, instance, ALL_ASSETS, defs.resources, display, verbose=args.verbose)
    display.print_summary()
    video = defs.resources["artifacts"].path("video", str(partition_key(scene_key, style_key)))
    print(f"shot {scene_key} x style {style_key} in {time.perf_counter() - started:.0f} s")
    print(f"the video: {video / 'video.mp4'}")
    from vf3d_assets.artifact_server import write_shot_page

    print(f"the shot's page: {write_shot_page(defs.resources['artifacts'], scene_key, style_key).as_uri()}")


def _register_command(args: argparse.Namespace) -> None:
    """`vf3d register`: what the Blender add-on calls; prints what it needs to launch the run as JSON."""
    from vf3d.benchmark.user_catalog import provisional_registration

    scene_key, style_key, before, resolved = _register(args)
    with provisional_registration(before):  # kept once the stages are known; a failure or kill undoes it
        instance, stages, defs = _shot_plan(scene_key, style_key, resolved["profile"][0] == "full")
        from vf3d_assets.assets import ALL_ASSETS
        from vf3d_assets.runner import partition_key, stages_to_run

        todo = stages_to_run(stages, instance, ALL_ASSETS)
    pair = str(partition_key(scene_key, style_key))
    print(json.dumps({"scene": scene_key, "style": style_key, "partition": pair, "location": "vf3d_assets",
                      "video": str(defs.resources["artifacts"].path("video", pair) / "video.mp4"),
                      "stages": [{"asset": s.asset, "partition": s.partition} for s in todo]}))


def _shots(args: argparse.Namespace) -> None:
    from vf3d.benchmark.user_catalog import read_user_catalog, user_catalog_path

    _deployment(args)
    data = read_user_catalog(user_catalog_path())
    if not data["shots"]:
        print(f"no shots registered in {user_catalog_path()} (register one with `vf3d run SHOT --style IMAGE`)")
        return
    from dagster import AssetKey
    from dagster._core.definitions.data_version import StaleStatus

    from vf3d_assets.assets import ALL_ASSETS
    from vf3d_assets.definitions import defs
    from vf3d_assets.instance import open_instance
    from vf3d_assets.runner import partition_key
    from vf3d_assets.staleness import stale_resolver

    instance = open_instance()
    resolver = stale_resolver(instance, ALL_ASSETS)
    scenes = {s["key"]: s for s in data["scenes"]}
    styles = {s["key"]: s for s in data["styles"]}
    for pair in data["shots"]:
        key = partition_key(pair["scene"], pair["style"])
        status = resolver.get_status(AssetKey("video"), key)
        state = {StaleStatus.FRESH: "done", StaleStatus.STALE: "stale (an input changed: `vf3d run` again)",
                 StaleStatus.MISSING: "not run"}[status]
        mp4 = defs.resources["artifacts"].path("video", str(key)) / "video.mp4"
        print(f"{pair['scene']:<20} {scenes[pair['scene']]['source']}")
        print(f"  style {pair['style']:<14} {styles[pair['style']]['reference']}"
              + (f" + {json.dumps(styles[pair['style']]['post_prompt'])}" if styles[pair['style']].get("post_prompt")
                 else ""))
        print(f"  video {state}" + (f": {mp4}" if mp4.is_file() else ""))


def _forget(args: argparse.Namespace) -> None:
    from vf3d.benchmark.user_catalog import forget_shot

    removed = forget_shot(args.key)
    styles = f" and style(s) {', '.join(removed['styles'])}" if removed["styles"] else ""
    print(f"forgot shot {removed['scene']}{styles}; its files under the artifacts folder stay until you delete them")


def _stale(args: argparse.Namespace) -> None:
    import time

    from vf3d_assets.instance import open_instance

    _deployment(args)
    instance = open_instance()
    from vf3d_assets.assets import ALL_ASSETS
    from vf3d_assets.definitions import defs
    from vf3d_assets.partitions import catalog
    from vf3d_assets.staleness import explain, input_problems, observe_sources, refresh, stale_partitions

    started = time.perf_counter()
    problems = input_problems(catalog)
    for line in problems.lines():
        print(f"unusable input: {line}", file=sys.stderr)
    if args.command == "refresh":
        done = refresh(instance, ALL_ASSETS, defs.resources, lambda item: print(f"refreshing {item}", flush=True),
                       problems=problems)
        print(f"refreshed {len(done)} partition(s); "
              + ("nothing is stale" if not problems.lines() else "partitions with unusable inputs were left out"))
    else:
        observe_sources(instance, ALL_ASSETS)
        stale = [explain(item, problems) for item in stale_partitions(instance, ALL_ASSETS)]
        for item in stale:
            print(item)
        print(f"{len(stale)} stale partition(s) ({time.perf_counter() - started:.1f} s)")
    if problems.lines():
        raise SystemExit(2)


def _ui(args: argparse.Namespace) -> None:
    from vf3d_assets.instance import open_instance, sync_gpu_pool

    _deployment(args)  # a bad setting is one line here, not a code location that fails to load
    slots = sync_gpu_pool(open_instance())
    print(f"vf3d: {slots} device(s) for GPU steps (VF3D_GPUS); the `gpu` pool runs {slots} at once", flush=True)
    from resources.artifacts import ArtifactStore
    from vf3d_assets.artifact_server import ARTIFACTS_URL_ENV, REPORT_PAGE, start_artifact_server

    # a child that exits with dagster; its address reaches the code server (the report's link) through the env
    url, _ = start_artifact_server(ArtifactStore().base(), args.artifacts_port or 0)
    os.environ[ARTIFACTS_URL_ENV] = url
    print(f"vf3d: the artifacts folder is served read-only at {url}/ (results page: {url}/{'/'.join(REPORT_PAGE)})",
          flush=True)
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")  # the venv's, even when the venv is not activated
    command = [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(args.port)]
    for name in ("SIGINT", "SIGTERM"):  # a shell's `&` may have set them to ignored; dagster must see them
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    os.execv(command[0], command)  # replaces this process: Ctrl-C and SIGTERM reach dagster directly


def _config(args: argparse.Namespace) -> None:
    from resources.deployment import SETTINGS, config_file

    resolved = _deployment(args)
    if args.home:
        from vf3d.common.home import default_home

        print(default_home().resolve())
        return
    print(f"deployment settings (environment, then {config_file()}, then defaults):")
    for setting in SETTINGS:
        value, source = resolved[setting.key]
        print(f"  {setting.key:<18} {value or '(empty)':<12} {setting.env} <- {source}")


ADDON = Path(__file__).resolve().parent / "blender_addon" / "vf3d_render"
ADDON_ZIP = "vf3d_render.zip"


def _blender_addon(args: argparse.Namespace) -> None:
    """Write the Blender add-on as an installable zip (Blender: Preferences > Add-ons > Install from Disk)."""
    import zipfile

    from vf3d.common.atomic import atomic_file

    target = args.out / ADDON_ZIP
    if args.out.exists() and not args.out.is_dir():
        raise VF3DInputError(args.out, "exists and is not a folder; --out names the folder to write the zip in")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VF3DInputError(args.out, f"cannot create the folder ({exc.strerror})") from None
    if not os.access(args.out, os.W_OK | os.X_OK):
        raise VF3DInputError(args.out, "cannot write in this folder: permission denied")
    members = {f"{ADDON.name}/{p.relative_to(ADDON).as_posix()}": p.read_bytes() for p in sorted(ADDON.rglob("*.py"))}
    if target.exists():  # replace only a zip of this add-on (one vf3d wrote), never someone else's file
        try:
            with zipfile.ZipFile(target) as existing:
                ours = set(existing.namelist()) <= set(members) | {f"{ADDON.name}/"}
        except (zipfile.BadZipFile, OSError):
            ours = False
        if not ours:
            raise VF3DInputError(target, "exists and is not a vf3d add-on zip; choose another --out")
    with atomic_file(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    print(f"the add-on: {target}")
    print("install it in Blender: Edit > Preferences > Add-ons > Install from Disk (or drag the zip onto Blender), "
          "then enable 'vf3d: Render with VideoFrom3D'; its panel is in Properties > Output > vf3d. "
          "Start `vf3d ui` first: the add-on sends shots to it.")


def _weight_rows() -> tuple[Path, list[dict]]:
    """The weights folder, and one row per full-profile component (models and metrics): present, where."""
    from evaluation.models import find_metric_weights
    from resources.models import ModelStore

    locations = ModelStore().locations()
    rows = locations.check()
    for component, (path, looked_at) in find_metric_weights(locations.weights_dir / "metrics",
                                                             locations.hf_cache).items():
        rows.append({"stage": "metrics", "component": component, "present": path is not None,
                     "where": str(path) if path else "; ".join(looked_at)})
    return locations.weights_dir, rows


ONLY_FOR_TRAINING_ON_VIDEOS = ("RAFT", "MiDaS")
"""Components the demo never uses (GGI training on real videos)."""


def _check_weights(args: argparse.Namespace) -> None:
    from resources.models import ModelStore

    _deployment(args)
    locations = ModelStore().locations()
    print(f"full-profile weights: {locations.weights_dir} (then the HF cache {locations.hf_cache})")
    for row in _weight_rows()[1]:
        state = "present" if row["present"] else "missing"
        print(f"{row['stage']:<9} {row['component']:<36} {state:<8} {row['where']}")


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's own error format: one line `error: <argument>: <problem>` and exit status 2, no
    usage block (`--help` prints it). Sub-commands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message.removeprefix('argument ')}\n")


def _whole_number(text: str) -> int:
    """argparse type of sizes and ports: a positive whole number (`--width 64.5` is one line, not a usage)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number")
    return value


def _key_argument(text: str) -> str:
    """argparse type of `--key`: a catalog key of at most `MAX_KEY_LENGTH` characters, checked before any work."""
    from vf3d.benchmark.user_catalog import check_key

    try:
        return check_key(text)
    except VF3DInputError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def _shot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shot", type=Path, help=".blend with an animated camera, or .glb/.gltf/.obj with --trajectory")
    parser.add_argument("--style", type=Path, required=True, help="the style reference image")
    parser.add_argument("--post-prompt", action="append", default=[],
                        help="text added to the style's prompt (paper: style variation); give it once per anchor, "
                             "or a few times to spread over the anchors, for a style change over time (paper Fig. 8: "
                             "anchors then sampled without replacement)")
    parser.add_argument("--key", type=_key_argument,
                        help="the shot's name in the catalog (default: from the file name; a-z, 0-9, _)")
    parser.add_argument("--trajectory", type=Path, help="trajectory JSON for mesh files (see README)")
    parser.add_argument("--width", type=_whole_number, default=DEFAULT_WIDTH)
    parser.add_argument("--height", type=_whole_number, default=DEFAULT_HEIGHT)
    parser.add_argument("--replace", action="store_true", help="register an existing key anew for another file/style")
    parser.add_argument("--profile", choices=("tiny", "full"), help="model profile for this run")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vf3d", description="VideoFrom3D: coarse 3D scene + camera path + style -> video")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preprocess", help="render edge maps, depth and flows of a shot")
    p.add_argument("scene", type=Path, help=".blend with an animated camera, or .glb/.gltf/.obj with --trajectory")
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced atomically)")
    p.add_argument("--trajectory", type=Path, help="trajectory JSON for mesh files (see README)")
    p.add_argument("--width", type=_whole_number, default=DEFAULT_WIDTH)
    p.add_argument("--height", type=_whole_number, default=DEFAULT_HEIGHT)
    p.add_argument("--allow-library", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder besides the shot's own from which it may read the files it references: .blend "
                        "libraries, glTF buffers/images, OBJ materials/textures (repeatable)")
    p.add_argument("--verbose", action="store_true", help="print Blender's own messages (file reads, warnings)")
    p.set_defaults(run=_preprocess)
    d = sub.add_parser("demo", help="materialize the demo partition through Dagster in the persistent instance")
    d.add_argument("--scene", help="scene key (default: the catalog's demo scene)")
    d.add_argument("--style", help="style key (default: the catalog's demo style)")
    d.add_argument("--profile", choices=("tiny", "full"),
                   help="model profile for this run (default: VF3D_PROFILE, vf3d.toml, else tiny)")
    d.add_argument("--verbose", action="store_true", help="print Dagster's full event log")
    d.set_defaults(run=_demo)
    r = sub.add_parser("run", help="register your shot and style and make its video (reruns only what is stale)")
    _shot_arguments(r)
    r.add_argument("--verbose", action="store_true", help="print Dagster's full event log")
    r.set_defaults(run=_run)
    g = sub.add_parser("register", help="register a shot and style without running; print the stages to run as "
                                        "JSON (the Blender add-on's call)")
    _shot_arguments(g)
    g.set_defaults(run=_register_command)
    sub.add_parser("shots", help="list your registered shots and styles and whether their videos are done"
                   ).set_defaults(run=_shots)
    f = sub.add_parser("forget", help="unregister a shot (its files stay)")
    f.add_argument("key", help="the shot's key (`vf3d shots` lists them)")
    f.set_defaults(run=_forget)
    c = sub.add_parser("check-weights", help="list which full-profile weights are on disk, per stage")
    c.set_defaults(run=_check_weights)
    c = sub.add_parser("config", help="show the deployment settings (profile, weights, device, speed and memory "
                       "options) and where each comes from")
    c.add_argument("--home", action="store_true", help="print only the working folder (VF3D_HOME)")
    c.set_defaults(run=_config)
    sub.add_parser("stale", help="list stale asset partitions and why (observes the scene/style files first)"
                   ).set_defaults(run=_stale)
    sub.add_parser("refresh", help="materialize exactly the stale partitions, following the graph downstream"
                   ).set_defaults(run=_stale)
    b = sub.add_parser("blender-addon", help="write the Blender add-on (Render with vf3d) as an installable zip")
    b.add_argument("--out", type=Path, required=True, help=f"folder for {ADDON_ZIP}")
    b.set_defaults(run=_blender_addon)
    u = sub.add_parser("ui", help="start the Dagster webserver and daemon on 127.0.0.1")
    u.add_argument("--port", type=_whole_number, default=3000)
    u.add_argument("--artifacts-port", type=_whole_number, help="port of the artifacts server (default: a free one)")
    u.set_defaults(run=_ui)
    return parser


def _terminate_as_interrupt(signum: int, frame) -> None:
    """SIGTERM does what Ctrl-C does: the work stops at once and every temporary this process made is removed on
    the way out (the atomic writers' cleanup runs; Dagster marks the run failed and frees its slots)."""
    handler = signal.getsignal(signal.SIGINT)  # Dagster's own while a run executes (it raises at its next safe
    if not callable(handler):                   # point), else Python's, which raises KeyboardInterrupt here
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    terminate = signal.getsignal(signal.SIGTERM)
    if args.command != "ui":  # `vf3d ui` execs dagster, which handles its own signals
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        return _run_command(args)
    finally:
        signal.signal(signal.SIGTERM, terminate)  # main() called in-process (tests) leaves no handler behind


CATALOG_COMMANDS = ("demo", "run", "register", "shots", "forget", "stale", "refresh", "ui")
"""The commands that read the working folder's catalog."""


def _check_working_catalog() -> None:
    """The working folder's catalog, whole structure checked (`read_user_catalog`): a corrupt one is one line naming
    it before any command that reads it starts, and is never rewritten. A registration left provisional by a
    `vf3d run` that was killed outright is undone first, as its run would have on an error."""
    from vf3d.benchmark.user_catalog import read_user_catalog, undo_abandoned_registrations, user_catalog_path

    read_user_catalog(user_catalog_path())
    for owner in undo_abandoned_registrations():
        print(f"vf3d: a killed `vf3d run` ({owner}) had registered a shot; the catalog is back as it was before it",
              file=sys.stderr)


@contextlib.contextmanager
def _blender_messages(verbose: bool) -> Iterator[None]:
    """Blender's own messages (file reads, driver warnings; `vf3d.preprocess.blender.quiet_stdout` keeps them out
    of the terminal) are printed to stderr with --verbose."""
    if not verbose:
        yield
        return
    from vf3d.preprocess.blender import BLENDER_LOGGER

    log, handler = logging.getLogger(BLENDER_LOGGER), logging.StreamHandler(sys.stderr)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _run_command(args: argparse.Namespace) -> int:
    # bitsandbytes (imported by peft) warns on every import on AVX512-BF16 CPUs about an optional kernel vf3d
    # never uses: not a line for the user
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        with _blender_messages(getattr(args, "verbose", False)):
            if args.command in CATALOG_COMMANDS:
                _check_working_catalog()
            args.run(args)
    except KeyboardInterrupt:
        print("vf3d: interrupted; this run's temporaries were removed", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - only user-input errors are turned into one line
        user_error = input_error_behind(exc)
        if user_error is not None:
            print(f"error: {user_error}", file=sys.stderr)
            return 2
        from vf3d_assets.runner import StageFailed

        if isinstance(exc, StageFailed):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
