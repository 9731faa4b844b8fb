"""Every way of making a video that the benchmark scores: the paper's method, its ablations and baselines.

This package holds the baselines; the ablations are settings of `vf3d.ggi`.
Each is a stale-tracked `video_<key>` asset (`video` for the method) on the same scene x style partitions,
scored by the same metrics, one row of the report. The role says how to read the row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    role: str
    """'ours' (the paper's method), 'ablation' (paper Table 3), 'baseline', or 'reference' (not a generator)."""
    description: str

    @property
    def display(self) -> str:
        return f"{self.label} ({self.role})"


METHODS = {m.key: m for m in (
    Method("ggi", "SAG + GGI, HED-S", "ours", "the paper: anchors by SAG, in-betweens by GGI trained on HED-S"),
    Method("ggi_hed", "SAG + GGI, HED of RGB", "ablation",
           "paper Table 3 'HED': GGI trained with HED of the RGB frames as its structure condition"),
    Method("ggi_no_structure", "SAG + GGI, no structure", "ablation",
           "paper Table 3 '-': GGI trained and sampled with empty structure maps"),
    Method("bidirectional", "SAG + bidirectional I2V", "baseline",
           "training-free: the base I2V model run forward from v_0 and backward from v_N, fused (I2V3D)"),
    Method("sag_dense", "SAG on every frame", "baseline",
           "paper Fig. 13 'SAG only': every frame by SAG, each guided by the previous frame warped into it"),
    Method("per_frame", "style ControlNet per frame", "baseline",
           "every frame from the style-aligned FLUX ControlNet alone, independently (Blender diffusion add-ons)"),
    Method("anchor_warp", "anchors warped by mesh flows", "reference",
           "the anchors warped into each frame, holes from the nearer anchor's nearest valid pixel (the pseudo-GT)"),
)}
DEFAULT_METHODS = ("ggi", "anchor_warp", "bidirectional", "sag_dense", "per_frame")
"""Methods the benchmark jobs run unless configured (VF3D_METHODS): the ablations need two more GGI trainings."""


def method(key: str) -> Method:
    if key not in METHODS:
        raise ValueError(f"method {key!r}: expected one of {', '.join(METHODS)}")
    return METHODS[key]
