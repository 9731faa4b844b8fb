"""VideoFrom3D (SIGGRAPH Asia 2025) as a library: coarse 3D scene + camera path + style reference -> video.

One sub-package per stage of the paper's pipeline (Fig. 3), layered so that imports run one way:

    common      shared plumbing: atomic writes, input errors, video files, pictures, flow warping
    models      networks and their weights: `tiny` configs and `full` checkpoints (FLUX, HED ControlNet,
                CogVideoX, HED, RAFT, depth estimator), devices
    preprocess  Sec. 3.1: shots opened with Blender, edge maps h_i, reprojection flows, depth
    sag         Sec. 3.2: distribution alignment (style LoRA), Sparse Appearance-guided Sampling, anchors
    ggi         Sec. 3.3-3.4: warped noise, geometry-guided in-betweening, GGI training and its data
    benchmark   the 16-scene x 3-style catalog and the scripts that built its scenes and references

`common` imports nothing else of vf3d; `models` only `common`; a stage imports `common`, `models` and its
own package (the benchmark, a list of shots, also reads them with `preprocess`). The one crossing between stages is GGI's training data, which renders textured shots and runs
the preprocessing on them (`vf3d.preprocess.guidance.preprocess`, `vf3d.preprocess.blender`); SAG and GGI
share only what lives below them. `tests/test_layout.py` holds the tree to these rules. Nothing here imports
Dagster: `vf3d_assets` wraps these functions as assets.
"""
