"""Sparse Anchor-view Generation, SAG (paper Sec. 3.2): style-aligned anchor views v_0, v_N per segment.

- `style_lora`: distribution alignment, LoRA on FLUX and its HED ControlNet trained on the style reference
  with an identifier prompt (`StyleLoRATrainer`, `load_style_lora`, `LORA_PRESETS`).
- `sampling`: Sparse Appearance-guided Sampling, latent replacement by the warped v_{0->N} in observed
  regions for the early steps, Eq. (1) (`SAGPipeline`, `SAGSettings`, `SAG_PRESETS`, `unobserved_mask`).
- `anchors`: the anchors of a whole trajectory, chained segment by segment (`generate_anchors`,
  `anchor_frames`).
"""
