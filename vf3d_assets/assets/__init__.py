"""Every asset of the pipeline, in graph order (definitions, the stale-partition sensor and the CLI share it)."""

from vf3d_assets.assets.evaluation import benchmark_report, metrics
from vf3d_assets.assets.ggi import ggi_training_set, ggi_weights, video, warped_noise
from vf3d_assets.assets.sag import anchors, style_lora
from vf3d_assets.assets.scenes import guidance, scene, scene_source
from vf3d_assets.assets.styles import style_reference

ALL_ASSETS = [scene_source, style_reference, scene, guidance, warped_noise, style_lora, anchors, ggi_training_set,
              ggi_weights, video, metrics, benchmark_report]
