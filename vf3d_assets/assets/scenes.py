"""Per-scene assets: the observed source files, the parsed shot, and the rendered guidance."""


import json

import numpy as np
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DataVersion,
    DataVersionsByPartition,
    MaterializeResult,
    MetadataValue,
    asset,
    observable_source_asset,
)
from PIL import Image

from resources.artifacts import ArtifactStore
from resources.blender import BlenderRenderer
from vf3d.common.atomic import write_text_atomic
from vf3d.common.errors import VF3DInputError
from vf3d.common.hashing import content_hash
from vf3d.common.visualize import contact_sheet, flow_to_rgb
from vf3d.preprocess.guidance import describe_shot
from vf3d.preprocess.hed_input import read_hed_input
from vf3d_assets.progress import step_progress
from vf3d_assets.metadata import image_markdown
from vf3d_assets.partitions import catalog, scene_partitions

MISSING = "missing"
"""Data version of a source whose files are missing or unusable (`vf3d stale` says which and why)."""


@observable_source_asset(partitions_def=scene_partitions, group_name="scenes",
                         description="A shot's input files (the shot file and every file it references: .blend "
                                     "libraries, glTF buffers and images, OBJ materials and textures; the "
                                     "trajectory JSON of a mesh); data version = content hash.")
def scene_source() -> DataVersionsByPartition:
    versions = {}
    for key, entry in catalog.scenes.items():
        try:
            versions[key] = DataVersion("|".join(content_hash(f)[:16] for f in entry.input_files()))
        except VF3DInputError:
            versions[key] = DataVersion(MISSING)
    return DataVersionsByPartition(versions)


@asset(partitions_def=scene_partitions, deps=[scene_source], group_name="scenes", code_version="1",
       description="The shot opened in Blender: intrinsics, per-frame poses (OpenCV axes), 46-frame segments.")
def scene(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
    entry = catalog.scene(context.partition_key)
    shot = describe_shot(entry.source, entry.width, entry.height, entry.trajectory, entry.library_paths)
    path = artifacts.path("scene", context.partition_key) / "scene.json"
    write_text_atomic(path, json.dumps(shot, indent=1))
    return MaterializeResult(
        data_version=DataVersion(content_hash(path)),
        metadata={
            "path": MetadataValue.path(str(path)),
            "frames": shot["num_frames"],
            "segments": len(shot["segments"]),
            "resolution": f"{shot['width']}x{shot['height']}",
            "category": entry.category,
            "fx": shot["intrinsics"]["fx"],
        },
    )


class GuidanceConfig(Config):
    min_valid_flow_fraction: float = 0.5
    """Check threshold: every consecutive pair must keep this fraction of its geometry pixels valid."""


@asset(
    partitions_def=scene_partitions,
    deps=[scene],
    group_name="scenes",
    code_version="2",  # 2: the edge detector's inputs (normal matcap + Line Art strokes; anchors at 1.5x)
    description="Edge maps h_i and the edge detector's inputs, planar depth, flows f_i->i+1 and f_N->0 with valid "
                "masks (paper Sec. 3.1).",
    check_specs=[
        AssetCheckSpec("edges_on_every_frame", asset="guidance", description="Every edge map has edge pixels."),
        AssetCheckSpec("valid_flow_fraction", asset="guidance",
                       description="Consecutive-frame flows keep enough valid pixels."),
    ],
)
def guidance(context: AssetExecutionContext, config: GuidanceConfig, artifacts: ArtifactStore,
             blender: BlenderRenderer) -> MaterializeResult:
    entry = catalog.scene(context.partition_key)
    out = artifacts.path("guidance", context.partition_key)

    stats = blender.render_guidance(entry, out, step_progress(context, "frames rendered", every=23))
    edges = [np.asarray(Image.open(out / "edges" / f"{i:05d}.png")) for i in range(stats.num_frames)]
    picks = np.linspace(0, stats.num_frames - 1, min(12, stats.num_frames)).round().astype(int)
    with np.load(out / "flows" / "seg000.npz") as first:
        flow_pictures = [flow_to_rgb(first["forward"][0], first["forward_valid"][0]),
                         flow_to_rgb(first["end_to_start"], first["end_to_start_valid"])]
    empty = [i for i, fraction in enumerate(stats.edge_fraction) if fraction == 0.0]
    worst = float(min(stats.forward_valid_fraction))
    hed_inputs = json.loads((out / "meta.json").read_text())["hed_input"]
    hed_pictures = [read_hed_input(out, i, "frames") for i in picks[:: max(1, len(picks) // 4)]]
    return MaterializeResult(
        data_version=DataVersion(content_hash(out)),
        metadata={
            "path": MetadataValue.path(str(out)),
            "edge_contact_sheet": image_markdown(contact_sheet([edges[i] for i in picks]), "edges"),
            "hed_input_contact_sheet": image_markdown(contact_sheet(hed_pictures, columns=4),
                                                      f"what the edge detector reads ({hed_inputs['kind']})"),
            "hed_input": MetadataValue.json(hed_inputs),
            "flow_preview": image_markdown(contact_sheet(flow_pictures, columns=2, thumb_width=240),
                                           "f_0->1 and f_N->0"),
            "frames": stats.num_frames,
            "segments": len(stats.segments),
            "mean_edge_fraction": float(np.mean(stats.edge_fraction)),
            "min_valid_flow_fraction": worst,
            "end_to_start_valid_fraction": MetadataValue.json(stats.end_to_start_valid_fraction),
            "render_seconds": round(stats.render_seconds, 2),
            "flow_seconds": round(stats.flow_seconds, 2),
            "hed_input_seconds": round(stats.hed_input_seconds, 2),
        },
        check_results=[
            AssetCheckResult(check_name="edges_on_every_frame", passed=not empty,
                             metadata={"frames_without_edges": MetadataValue.json(empty)}),
            AssetCheckResult(check_name="valid_flow_fraction", passed=worst >= config.min_valid_flow_fraction,
                             severity=AssetCheckSeverity.WARN,
                             metadata={"min_valid_fraction": worst, "threshold": config.min_valid_flow_fraction}),
        ],
    )
