"""`vf3d` command line: preprocess a shot, run the demo through Dagster, start the UI.

Errors in user input print one line (`error: <file>: <problem>`) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from vf3d.common.errors import VF3DInputError
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


def _user_error(exc: BaseException) -> VF3DInputError | None:
    """Find a VF3DInputError behind Dagster's step-failure wrappers."""
    seen = exc
    while seen is not None:
        if isinstance(seen, VF3DInputError):
            return seen
        seen = getattr(seen, "user_exception", None) or seen.__cause__
    return None


def _deployment(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    """Resolve and check the deployment settings (`--profile` first, if the command has it)."""
    from resources.deployment import SETTINGS, check_deployment

    if getattr(args, "profile", None):
        os.environ[next(s.env for s in SETTINGS if s.key == "profile")] = args.profile
    return check_deployment()


def _demo(args: argparse.Namespace) -> None:
    from vf3d_assets.instance import ensure_dagster_home

    if _deployment(args)["profile"][0] == "full":  # every checkpoint the demo reads, before any work starts
        weights_dir, rows = _weight_rows()
        missing = [r["component"] for r in rows
                   if not r["present"] and not r["component"].startswith(ONLY_FOR_TRAINING_ON_VIDEOS)]
        if missing:
            raise VF3DInputError(weights_dir, f"{len(missing)} full-profile component(s) missing "
                                              f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                                              "`vf3d check-weights` lists where each was looked for")
    home = ensure_dagster_home()
    from dagster import AssetKey, DagsterInstance, MultiPartitionKey
    from dagster._core.definitions.observe import observe

    from vf3d_assets.definitions import defs, methods
    from vf3d_assets.partitions import catalog
    from vf3d_assets.staleness import check_partition_inputs

    scene_key = args.scene or (catalog.demo[0] if catalog.demo else sorted(catalog.scenes)[0])
    style_key = args.style or (catalog.demo[1] if catalog.demo else sorted(catalog.styles)[0])
    catalog.scene(scene_key), catalog.style(style_key)  # a bad key fails here, with the list of known keys
    check_partition_inputs(catalog, scene_key, style_key)  # every input file, before any work starts
    instance = DagsterInstance.get()
    full = os.environ.get("VF3D_PROFILE") == "full"
    if full and instance.get_latest_materialization_event(AssetKey("ggi_weights")) is None:
        # training GGI is the paper's 10,000-step run on DL3DV videos, not a demo step: import the released weights
        raise VF3DInputError("ggi_weights", "the full demo samples with GGI weights and none are materialized: "
                                            "import the official checkpoint first (materialize ggi_weights with "
                                            "config pretrained: /path/to/checkpoint-1350; README)")
    for source in ("scene_source", "style_reference"):
        observe([defs.resolve_assets_def(source)], instance=instance)
    # The same jobs the UI launches, in graph order, on the demo partition (tiny profile unless configured).
    jobs = [("scene_guidance", scene_key), ("style_alignment", style_key), ("ggi_training", None),
            ("shot_video", MultiPartitionKey({"scene": scene_key, "style": style_key})), ("benchmark_table", None)]
    for job, partition in [j for j in jobs if not (full and j[0] == "ggi_training")]:
        result = defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance)
        for event in result.get_asset_materialization_events():
            print(f"materialized {event.asset_key.to_user_string()}" + (f"[{partition}]" if partition else ""),
                  flush=True)
    print(f"the video: {defs.resources['artifacts'].path('video', f'{scene_key}|{style_key}') / 'video.mp4'}")
    print(f"the report: {defs.resources['artifacts'].path('benchmark_report', 'all') / 'benchmark.md'}")
    print(f"runs, pictures and metadata are in the instance at {home}; open them with `vf3d ui`")
    if os.environ.get("VF3D_PROFILE") == "tiny":
        print("note: this ran the tiny profile: every model was built from a config with random weights, so the "
              "video and anchors are noise by design.\n"
              "what it proved: every stage (guidance renders, style LoRA, GGI training, anchors, video, metrics, "
              f"report) ran through Dagster and wrote its files and metadata, for {len(methods)} method(s) "
              f"({', '.join(methods)}), each a row of the report.\n"
              "with real weights: put the checkpoints in place (`vf3d check-weights` lists them), then "
              "`vf3d demo --profile full` or VF3D_PROFILE=full (README: \"Run with real weights\").")


def _stale(args: argparse.Namespace) -> None:
    import time

    from vf3d_assets.instance import ensure_dagster_home

    _deployment(args)
    ensure_dagster_home()
    from dagster import DagsterInstance

    from vf3d_assets.assets import ALL_ASSETS
    from vf3d_assets.definitions import defs
    from vf3d_assets.partitions import catalog
    from vf3d_assets.staleness import explain, input_problems, observe_sources, refresh, stale_partitions

    instance = DagsterInstance.get()
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
    from vf3d_assets.instance import ensure_dagster_home

    _deployment(args)  # a bad setting is one line here, not a code location that fails to load
    ensure_dagster_home()
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    dagster = Path(sys.executable).with_name("dagster")  # the venv's, even when the venv is not activated
    command = [str(dagster), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(args.port)]
    for name in ("SIGINT", "SIGTERM"):  # a shell's `&` may have set them to ignored; dagster must see them
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    os.execv(command[0], command)  # replaces this process: Ctrl-C and SIGTERM reach dagster directly


def _config(args: argparse.Namespace) -> None:
    from resources.deployment import SETTINGS, config_file

    resolved = _deployment(args)
    print(f"deployment settings (environment, then {config_file()}, then defaults):")
    for setting in SETTINGS:
        value, source = resolved[setting.key]
        print(f"  {setting.key:<18} {value or '(empty)':<12} {setting.env} <- {source}")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vf3d", description="VideoFrom3D: coarse 3D scene + camera path + style -> video")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preprocess", help="render edge maps, depth and flows of a shot")
    p.add_argument("scene", type=Path, help=".blend with an animated camera, or .glb/.gltf/.obj with --trajectory")
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced atomically)")
    p.add_argument("--trajectory", type=Path, help="trajectory JSON for mesh files (see README)")
    p.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    p.add_argument("--height", type=int, default=DEFAULT_HEIGHT)
    p.add_argument("--allow-library", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder besides the shot's own from which a .blend may link libraries (repeatable)")
    p.set_defaults(run=_preprocess)
    d = sub.add_parser("demo", help="materialize the demo partition through Dagster in the persistent instance")
    d.add_argument("--scene", help="scene key (default: the catalog's demo scene)")
    d.add_argument("--style", help="style key (default: the catalog's demo style)")
    d.add_argument("--profile", choices=("tiny", "full"),
                   help="model profile for this run (default: VF3D_PROFILE, vf3d.toml, else tiny)")
    d.set_defaults(run=_demo)
    c = sub.add_parser("check-weights", help="list which full-profile weights are on disk, per stage")
    c.set_defaults(run=_check_weights)
    sub.add_parser("config", help="show the deployment settings (profile, weights, device, speed and memory "
                   "options) and where each comes from").set_defaults(run=_config)
    sub.add_parser("stale", help="list stale asset partitions and why (observes the scene/style files first)"
                   ).set_defaults(run=_stale)
    sub.add_parser("refresh", help="materialize exactly the stale partitions, following the graph downstream"
                   ).set_defaults(run=_stale)
    u = sub.add_parser("ui", help="start the Dagster webserver and daemon on 127.0.0.1")
    u.add_argument("--port", type=int, default=3000)
    u.set_defaults(run=_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except Exception as exc:  # noqa: BLE001 - only user-input errors are turned into one line
        user_error = _user_error(exc)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
