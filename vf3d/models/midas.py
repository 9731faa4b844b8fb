"""controlnet_aux's MiDaS depth annotator: the depth picture of the official HED-S (paper Sec. 3.4).

The official GGI training (`training_ggi/mydataset_depthhed_mask.py`) makes each structure map as
`HEDdetector(MidasDetector(frame).resize((w, h))).resize((w, h))` with controlnet_aux's defaults: MiDaS v3
DPT-Hybrid (`dpt_hybrid-midas-501f0c75.pt` from lllyasviel/Annotators, beside `ControlNetHED.pth`) run at a
512 px short side with both sides rounded to multiples of 64 (not square), on RGB scaled to [-1, 1]; the
prediction is min-max normalised to 0..255 and the picture resized back with PIL's default (bicubic).

`MidasDepthAnnotator` runs controlnet_aux's own network class (`DPTDepthModel`, backbone `vitb_rn50_384`) on
a given device, loading the file with `weights_only`, and reproduces `MidasDetector.__call__` exactly
(tested against it).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vf3d.models.hed import CONTROLNET_AUX_RESOLUTION, AnnotatorNetwork, as_rgb, resize_like_controlnet_aux
from vf3d.models.weights import find_annotator_file

MIDAS_FILENAME = "dpt_hybrid-midas-501f0c75.pt"
MIDAS_COMPONENT = f"MiDaS depth annotator ({MIDAS_FILENAME} from lllyasviel/Annotators)"


def midas_network() -> torch.nn.Module:
    """controlnet_aux's MiDaS v3 DPT-Hybrid with random weights (`DPTDepthModel`, as its `load_model`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # controlnet_aux imports every annotator and timm's deprecated names
        from controlnet_aux.midas.midas.dpt_depth import DPTDepthModel
        return DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True)


class MidasDepthAnnotator(AnnotatorNetwork):
    """Frames -> the official HED-S depth pictures, (H, W) uint8, near = bright (see the module docstring);
    detected at controlnet_aux's 512 px unless told otherwise."""

    def __init__(self, network: torch.nn.Module, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, detect_resolution: int = CONTROLNET_AUX_RESOLUTION):
        super().__init__(network, device, dtype, detect_resolution)

    @classmethod
    def from_file(cls, weights: Path | None, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> MidasDepthAnnotator:
        """Load `dpt_hybrid-midas-501f0c75.pt` from a file or a folder (directly, under
        lllyasviel/Annotators/, or in an HF cache snapshot); never downloads. A file that is not this network's
        state dict is one `ValueError` naming it and the first mismatched keys."""
        path = find_annotator_file(weights, MIDAS_FILENAME, MIDAS_COMPONENT)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
            raise ValueError(f"{path}: not a readable PyTorch state dict ({exc})") from None
        state = state["model"] if "optimizer" in state else state  # as MiDaS's BaseModel.load
        network = midas_network()
        expected = network.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
        if missing or unexpected or wrong:
            first = "; ".join(f"{what}: {', '.join(keys[:3])}" for what, keys in
                              (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
            raise ValueError(f"{path}: not a MiDaS DPT-Hybrid state dict ({first}); use {MIDAS_FILENAME} "
                             "from lllyasviel/Annotators")
        network.load_state_dict(state)
        return cls(network, device, dtype)

    @torch.no_grad()
    def depth_picture(self, image: np.ndarray) -> np.ndarray:
        """One frame ((H, W, 3) or (H, W) uint8) -> its depth picture at the frame's size."""
        rgb = as_rgb(image)
        height, width = rgb.shape[:2]
        small = resize_like_controlnet_aux(rgb, self.detect_resolution)
        x = torch.from_numpy(small.copy()).to(self.device, torch.float32) / 127.5 - 1.0
        depth = self.network(x.permute(2, 0, 1)[None].to(self.dtype))[0].float()
        depth = depth - depth.min()
        depth = (depth / depth.max()).cpu().numpy()
        picture = (depth * 255.0).clip(0, 255).astype(np.uint8)
        # controlnet_aux resizes to its image_resolution (512 as well: a no-op), then the dataset uses PIL's resize
        return np.asarray(Image.fromarray(picture).resize((width, height)))

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.depth_picture(frame) for frame in frames]
