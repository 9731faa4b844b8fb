"""The networks every stage runs, and their weights (no paper section: the priors of Secs. 3.2-3.4).

Each component has a `tiny` profile (built from configs in code: seeded random weights, offline, CPU) and a
`full` profile (the published checkpoints loaded from disk with `local_files_only`). Loading lives here,
never in a stage.

- `flux`: FLUX.1-dev and the XLabs HED ControlNet (`tiny_flux`, `load_full_flux`, `FluxComponents`).
- `cogvideo`: CogVideoX-5B I2V, its widened patch embedding and the Go-with-the-Flow LoRA (`tiny_cogvideo`,
  `load_full_ggi`, `load_ggi_weights`, `ggi_state_dict`, `GGIComponents`).
- `hed`: edge detectors (classical for `tiny`, HED for `full`: `make_edge_detector`).
- `raft`: optical flow of real videos (`load_raft`, `estimate_flows`).
- `depth_estimator`: monocular depth (`load_depth_estimator`, `estimate_depth`).
- `store`: where weights live and loading by profile (`ModelLocations`, `load_flux`, `load_ggi`);
  `weights`: file lookups; `device`: device, dtype, offload; `tokenizers_offline`: tokenizers built offline.
"""
