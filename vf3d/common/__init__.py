"""Shared plumbing used by every stage (no paper section of its own).

- `atomic`: crash-safe writes (`atomic_dir`, `atomic_file`, `write_text_atomic`).
- `home`: the working folder (`default_home`, VF3D_HOME).
- `errors`: `VF3DInputError`, the one-line answer to bad input, and `read_json_object`.
- `video_io`: H.264 mp4 files (`write_mp4`, `read_mp4`) and `chain_segments`.
- `visualize`: pictures for the UI (`contact_sheet`, `flow_to_rgb`, `line_plot`, `png_bytes`).
- `warp`: the pixel-centre convention (`pixel_centres`) and backward warping along flows (`warp_image`),
  used by SAG (the warped anchor v_{0->N}) and by the evaluation (pseudo ground truth).
"""
