"""Edge detectors of the SAG stage: the classical `tiny` detector and the HED network loaded from disk."""

import numpy as np
import pytest
import torch

from vf3d.models.hed import (ClassicalEdgeDetector, HEDEdgeDetector, hed_network_class, make_edge_detector)
from vf3d.models.weights import MissingWeightsError

torch.set_num_threads(1)


def rectangle_outline(height=48, width=64) -> np.ndarray:
    """A white 1 px rectangle outline on black, rows 8..39 and columns 8..55."""
    image = np.zeros((height, width), np.uint8)
    image[8, 8:56] = image[39, 8:56] = 255
    image[8:40, 8] = image[8:40, 55] = 255
    return image


def test_classical_edges_on_line_art():
    detector = ClassicalEdgeDetector()
    image = rectangle_outline()
    edges = detector(image)
    assert edges.shape == image.shape and edges.dtype == np.uint8
    assert edges[image > 0].min() > 128  # strong on every drawn line
    assert edges[20:28, 24:40].max() < 8  # flat inside the rectangle, 12+ px from the lines
    np.testing.assert_array_equal(detector(image), edges)
    np.testing.assert_array_equal(detector(np.repeat(image[..., None], 3, axis=2)), edges)  # RGB == gray


def test_classical_edges_are_thick_and_centred_on_thin_lines():
    image = np.zeros((48, 64), np.uint8)
    image[:, 30] = 255
    row = ClassicalEdgeDetector()(image)[24].astype(int)
    assert row.argmax() == 30  # one stroke centred on the line, not two flanks
    np.testing.assert_array_equal(row[30 - 6:30], row[31:31 + 6][::-1])  # symmetric
    assert (row > 64).sum() >= 3  # thick, soft


def test_classical_edges_on_a_filled_rectangle():
    image = np.zeros((48, 64, 3), np.uint8)
    image[12:36, 16:48] = (200, 120, 40)
    edges = ClassicalEdgeDetector()(image)
    assert edges[12, 30] > 128 and edges[24, 16] > 128  # the boundary
    assert edges[22:26, 30:34].max() < 8 and edges[:2, :4].max() < 8  # inside and outside, 12+ px away


def test_input_checks():
    detector = ClassicalEdgeDetector()
    with pytest.raises(ValueError, match="uint8"):
        detector(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match=r"\(8, 8, 4\)"):
        detector(np.zeros((8, 8, 4), np.uint8))


@pytest.fixture(scope="module")
def hed_weights(tmp_path_factory):
    """A ControlNetHED.pth with random weights, saved as the annotator file is."""
    torch.manual_seed(0)
    network = hed_network_class()()
    torch.nn.init.normal_(network.norm, 100.0, 30.0)  # non-zero: checks the loaded weights are used
    path = tmp_path_factory.mktemp("annotators") / "ControlNetHED.pth"
    torch.save(network.state_dict(), path)
    return network, path


def test_hed_loads_from_disk_and_matches_controlnet_aux(hed_weights):
    network, path = hed_weights
    image = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    detector = HEDEdgeDetector.from_file(path.parent)  # found in a folder
    edges = detector(image)
    assert edges.shape == (64, 128) and edges.dtype == np.uint8
    np.testing.assert_array_equal(detector(image), edges)

    from controlnet_aux.hed import HEDdetector
    reference = HEDdetector(network.float().eval())(image, detect_resolution=64, image_resolution=64,
                                                    output_type="np")
    np.testing.assert_array_equal(edges, reference[..., 0])


def test_hed_keeps_odd_sizes_and_gray_input(hed_weights):
    _, path = hed_weights
    detector = make_edge_detector("auto", "full", path, "cpu", torch.float32)
    assert isinstance(detector, HEDEdgeDetector)
    assert detector(rectangle_outline(47, 61)).shape == (47, 61)
    resized = HEDEdgeDetector.from_file(path, detect_resolution=64)
    assert resized(rectangle_outline(47, 61)).shape == (47, 61)


def test_missing_hed_weights_names_the_paths(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        make_edge_detector("hed", "tiny", tmp_path / "nope" / "ControlNetHED.pth", "cpu", torch.float32)
    assert str(tmp_path / "nope" / "ControlNetHED.pth") in str(info.value)
    assert "HED annotator" in str(info.value)
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "ControlNetHED.pth")):
        HEDEdgeDetector.from_file(tmp_path)
    with pytest.raises(MissingWeightsError, match="no location given"):
        make_edge_detector("auto", "full", None)


def test_make_edge_detector_choices():
    assert isinstance(make_edge_detector("auto", "tiny"), ClassicalEdgeDetector)
    assert isinstance(make_edge_detector("classical", "full"), ClassicalEdgeDetector)
    with pytest.raises(ValueError, match="kind"):
        make_edge_detector("canny", "tiny")


def test_wrong_weights_file_is_named(tmp_path):
    path = tmp_path / "ControlNetHED.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=f"{path}: not a ControlNetHED state dict"):
        HEDEdgeDetector.from_file(path)


def test_references_go_through_hed_at_controlnet_aux_resolution(hed_weights, tmp_path, monkeypatch):
    """The style LoRA's reference edge map is controlnet_aux's HEDdetector at its defaults (detect and image
    resolution 512), resized back, as the official distribution alignment computes it."""
    network, path = hed_weights
    from controlnet_aux.hed import HEDdetector
    from PIL import Image

    from vf3d.models.hed import CONTROLNET_AUX_RESOLUTION
    image = np.random.default_rng(1).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    ours = make_edge_detector("hed", "full", path, detect_resolution=CONTROLNET_AUX_RESOLUTION)(image)
    theirs = np.asarray(HEDdetector(network.float().eval())(Image.fromarray(image)).resize((800, 600)))[..., 0]
    full = make_edge_detector("hed", "full", path)(image)  # HED at the image's own size, for contrast
    # Equal, final resampling included (controlnet_aux's bilinear to 704x512, then PIL's bicubic to 800x600).
    np.testing.assert_array_equal(ours, theirs)
    assert np.abs(full.astype(int) - theirs.astype(int)).mean() > 2
    # The style_lora asset asks for that resolution.
    from dagster import materialize

    from resources import GPU, ArtifactStore, ModelStore
    from vf3d_assets.assets.sag import style_lora
    asked = []
    real = ModelStore.edges
    monkeypatch.setattr(ModelStore, "edges", lambda self, *a: asked.append(a[2:]) or real(self, *a))
    materialize([style_lora], partition_key="photo", resources={
        "artifacts": ArtifactStore(root=str(tmp_path)), "models": ModelStore(profile="tiny"), "gpu": GPU(device="cpu")},
        run_config={"ops": {"style_lora": {"config": {"steps": 1}}}})
    assert asked == [(CONTROLNET_AUX_RESOLUTION,)]


@pytest.mark.parametrize("size, render_height", [((180, 120), 120), ((120, 80), 120), ((240, 96), 96)])
def test_rendered_frames_go_through_hed_exactly_as_mk_edge(hed_weights, size, render_height):
    """Fork `assets/mk_edge.py:29-32`, transcribed: `im = im.convert('RGB'); size = im.size;
    im = model(im, detect_resolution=size[1], image_resolution=size[1]); im = im.resize(size)`. Our detector at
    detect_resolution R equals that chain with R = the render height (180x120 stands for the official 1080x720:
    both round up to a 64-multiple grid, 192x128 and 1088x704); a smaller picture at the same R (120x80 for a
    720x480 frame at R = 720) is enlarged to the same grid, which is how a video-size frame is detected as the
    official 1.5x render is. At 240x96 controlnet_aux's image_resolution step changes the size (256x128 -> 192x128)."""
    network, path = hed_weights
    from controlnet_aux.hed import HEDdetector
    from PIL import Image

    image = np.random.default_rng(2).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(image).convert("RGB")
    official = HEDdetector(network.float().eval())(im, detect_resolution=render_height, image_resolution=render_height)
    official = np.asarray(official.resize(im.size))
    assert official.shape == (size[1], size[0], 3)
    ours = HEDEdgeDetector.from_file(path, detect_resolution=render_height)(image)
    np.testing.assert_array_equal(ours, official[..., 0])
