"""The official HED-S depth picture: controlnet_aux's MiDaS annotator, loaded from its distributed file."""

import numpy as np
import pytest
import torch
from PIL import Image

from vf3d.models.midas import MIDAS_FILENAME, MidasDepthAnnotator, midas_network
from vf3d.models.weights import MissingWeightsError
from vf3d.ggi.training_set import hed_s_depth_pictures


@pytest.fixture(scope="module")
def annotators_folder(tmp_path_factory):
    """A weights folder holding lllyasviel/Annotators/dpt_hybrid-midas-501f0c75.pt: the full-size network's
    state dict (random weights), the file's distributed layout and key names."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights")
    (folder / "lllyasviel" / "Annotators").mkdir(parents=True)
    torch.save(midas_network().state_dict(), folder / "lllyasviel" / "Annotators" / MIDAS_FILENAME)
    return folder


def test_depth_picture_equals_controlnet_aux_midas_detector_at_a_non_square_size(annotators_folder):
    from controlnet_aux.midas import MidasDetector
    from controlnet_aux.midas.api import MiDaSInference

    path = annotators_folder / "lllyasviel" / "Annotators" / MIDAS_FILENAME
    rng = np.random.default_rng(0)
    frame = np.repeat(np.linspace(0, 255, 72, dtype=np.float32)[None], 56, 0)[..., None] * [1.0, 0.6, 0.3]
    frame = (frame + rng.normal(0, 20, frame.shape)).clip(0, 255).astype(np.uint8)
    annotator = MidasDepthAnnotator.from_file(annotators_folder)
    assert annotator.detect_resolution == 512  # controlnet_aux's default, which the official code keeps
    annotator.detect_resolution = 256  # the same code path at a quarter of the cost: 56 x 72 runs at 256 x 320
    ours = annotator([frame])[0]
    # the official dataset code: MidasDetector(PIL frame) with its defaults, then PIL's resize to the frame size
    detector = MidasDetector(MiDaSInference("dpt_hybrid", str(path)))
    official = np.asarray(detector(Image.fromarray(frame), detect_resolution=256, image_resolution=256)
                          .resize((72, 56)))
    assert ours.shape == (56, 72) and ours.dtype == np.uint8
    assert ours.max() - ours.min() > 100  # a real picture, not a constant
    np.testing.assert_array_equal(ours, official[..., 0])


def test_midas_file_missing_or_mismatched_is_one_clear_error(tmp_path):
    with pytest.raises(MissingWeightsError, match=f"Annotators/{MIDAS_FILENAME}"):
        MidasDepthAnnotator.from_file(tmp_path)
    state = midas_network().state_dict()
    del state["scratch.output_conv.4.bias"]
    state["pretrained.model.pos_embed"] = torch.zeros(1, 10, 768)
    state["head.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / MIDAS_FILENAME)
    with pytest.raises(ValueError, match=(f"{MIDAS_FILENAME}: not a MiDaS DPT-Hybrid state dict \\(missing: "
                                          "scratch.output_conv.4.bias; unexpected: head.extra; wrong shape: "
                                          "pretrained.model.pos_embed \\(1, 10, 768\\) != \\(1, 577, 768\\)\\)")):
        MidasDepthAnnotator.from_file(tmp_path)


def test_training_set_depth_source_is_the_annotator_unless_a_transformers_folder_is_given(annotators_folder,
                                                                                           tmp_path):
    assert isinstance(hed_s_depth_pictures(annotators_folder, torch.device("cpu")), MidasDepthAnnotator)
    with pytest.raises(MissingWeightsError, match="MiDaS depth annotator"):
        hed_s_depth_pictures(tmp_path, torch.device("cpu"))
