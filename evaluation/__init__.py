"""Metrics of generated videos (paper Sec. 4.2, Table 2), importable without Dagster.

One module per metric family: `pseudo_gt` (PSNR, SSIM, LPIPS on warped anchors), `structure` (PSNR-D),
`quality` (CLIP-A, MUSIQ), `consistency` (CLIP-I, VBench SC/BC). `features` holds the shared preprocessing
and embeddings, `models` the `tiny`/`full` metric model profiles, `metrics` the entry point `evaluate_video`
and the paper's Table 2 (`PAPER_TABLE2`), `report` the benchmark table.
"""
