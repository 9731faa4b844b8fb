"""Metrics of generated videos (paper Sec. 4.2, Table 2), importable without Dagster.

One module per metric family: `pseudo_gt` (PSNR, SSIM, LPIPS on warped anchors), `structure` (PSNR-D),
`quality` (CLIP-A, MUSIQ), `consistency` (CLIP-I, VBench SC/BC), `flicker` (geometric flicker, not in the
paper; `plane_video` renders its analytic calibration videos). `features` holds the shared preprocessing
and embeddings, `models` the `tiny`/`full` metric model profiles, `metrics` the entry point `evaluate_video`,
the paper's Tables 2 and 3 and the metrics code version, `report` the benchmark table.
"""
