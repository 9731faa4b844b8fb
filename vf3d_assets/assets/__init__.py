"""Every asset of the pipeline, in graph order (definitions, the stale-partition sensor and the CLI share it)."""

from vf3d_assets.assets.baselines import video_anchor_warp, video_per_frame, video_sag_dense
from vf3d_assets.assets.evaluation import METRICS_ASSETS, benchmark_report
from vf3d_assets.assets.ggi import (ggi_training_set, ggi_weights, ggi_weights_hed, ggi_weights_no_structure, video,
                                    video_bidirectional, video_ggi_hed, video_ggi_no_structure, warped_noise)
from vf3d_assets.assets.sag import anchors, style_lora
from vf3d_assets.assets.scenes import guidance, scene, scene_source
from vf3d_assets.assets.styles import style_reference

METHOD_VIDEOS = [video, video_bidirectional, video_ggi_hed, video_ggi_no_structure, video_sag_dense, video_per_frame,
                 video_anchor_warp]
ALL_ASSETS = [scene_source, style_reference, scene, guidance, warped_noise, style_lora, anchors, ggi_training_set,
              ggi_weights, ggi_weights_hed, ggi_weights_no_structure, *METHOD_VIDEOS, *METRICS_ASSETS.values(),
              benchmark_report]
