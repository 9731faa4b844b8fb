"""Baselines and ablations the benchmark scores on the same scenes as the method (docs in each module).

- `methods`: the registry of every method the benchmark compares (ours, ablations, baselines, the reference),
  with the label and role each row of the report carries.
- `anchor_warp`: the anchors warped into every frame by the exact mesh flows, holes filled (the pseudo-GT
  reference; also the composite the visual-fidelity metrics use).
- `dense_sag`: every frame from SAG (`sag_dense`: each guided by the previous frame, paper Fig. 13's
  SAG-only) or from the style-aligned ControlNet alone, independently (`per_frame`).
The `bidirectional` baseline (training-free, I2V3D) and the GGI structure ablations (paper Table 3) are
settings of `vf3d.ggi` (`GGISettings.method`, `GGISettings.structure`).
"""
