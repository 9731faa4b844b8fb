"""Geometry-guided Generative Inbetweening, GGI (paper Sec. 3.3) and its training (Sec. 3.4).

Inference:
- `noise_warp`: Go-with-the-Flow noise warping along the flows f_i->i+1 (`warped_noise_for_segment`).
- `pipeline`: CogVideoX-5B I2V widened with edge channels, Eq. (2) (`GGIPipeline`, `GGISettings`,
  `GGI_PRESETS`, `conditioning_latents`, `model_input`).
- `inbetween`: a whole trajectory, segment by segment, chained into one video (`generate_video`).

Training:
- `training`: the GGI training loop with resumable checkpoints, Eq. (3) (`GGITrainer`, `TrainingClip`,
  `GGI_TRAINING_PRESETS`).
- `training_set`: training clips with HED-S structure maps, from textured renders or real videos
  (`clip_from_render`, `clip_from_video`, `video_folders`, `read_video_frames`).
"""
