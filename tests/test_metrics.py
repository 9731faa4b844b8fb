"""The evaluation package: hand-computable cases for each metric, tiny models end to end, full-profile loading."""

import math

import numpy as np
import pytest
import torch

from evaluation.consistency import (background_consistency, clip_image_similarity, subject_consistency,
                                    vbench_consistency)
from evaluation.flicker import geometric_flicker
from evaluation.metrics import METRICS, PAPER_TABLE2, TABLE2_METRICS, evaluate_video
from evaluation.models import (
    TINY_MUSIQ,
    full_metric_models,
    load_clip_vision,
    load_musiq,
    lpips_network,
    tiny_metric_models,
)
from evaluation.pseudo_gt import bracketing_anchors, fidelity, pseudo_gt
from evaluation.quality import (AESTHETIC_HEADS, LinearAestheticHead, MLPAestheticHead, clip_aesthetic,
                                load_aesthetic_head)
from evaluation.structure import histogram_equalise, psnr_d_from_disparity
from vf3d.models.weights import MissingWeightsError
from vf3d.preprocess.camera import Intrinsics

W, H, DISTANCE, SHIFT = 64, 48, 10.0, 4
"""A fronto-parallel plane at DISTANCE; each frame's camera steps right so the image content moves SHIFT px."""
INTRINSICS = Intrinsics(W, H, fx=50.0, fy=50.0, cx=W / 2, cy=H / 2)


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return tiny_metric_models(seed=0)


def sideways_dolly(num_frames: int, seed: int = 0):
    """Frames of a random texture on the plane (frame k = canvas columns k*SHIFT ..), its depth and cameras."""
    canvas = np.random.default_rng(seed).integers(0, 256, (H, W + (num_frames - 1) * SHIFT, 3), dtype=np.uint8)
    frames = np.stack([canvas[:, k * SHIFT:k * SHIFT + W] for k in range(num_frames)])
    depth = np.full((num_frames, H, W), DISTANCE, np.float32)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, 0, 3] = np.arange(num_frames) * SHIFT * DISTANCE / INTRINSICS.fx  # x translation of SHIFT px
    return frames, depth, c2w


def test_pseudo_gt_known_mask_of_a_camera_shift():
    frames, depth, c2w = sideways_dolly(4)
    # Frame 1 sees the plane SHIFT px further right than anchor 0: its last SHIFT columns are not in anchor 0.
    image, known = pseudo_gt(1, {0: frames[0]}, depth, c2w, INTRINSICS)
    assert known[:, : W - SHIFT].all() and not known[:, W - SHIFT:].any()
    np.testing.assert_array_equal(image[:, : W - SHIFT], frames[1][:, : W - SHIFT])
    assert (image[:, W - SHIFT:] == 0).all()
    # Anchor 3 (2 * SHIFT px further) misses frame 1's first 2 * SHIFT columns; together they see everything.
    _, known_3 = pseudo_gt(1, {3: frames[3]}, depth, c2w, INTRINSICS)
    assert known_3[:, 2 * SHIFT:].all() and not known_3[:, : 2 * SHIFT].any()
    # Where both see a pixel the nearer anchor (0) is taken: mark the anchors apart by brightness.
    dark, bright = frames[0] // 2, frames[3] // 2 + 128
    image, known = pseudo_gt(1, {0: dark, 3: bright}, depth, c2w, INTRINSICS)
    assert known.all()
    assert (image[:, : W - SHIFT] < 128).all() and (image[:, W - SHIFT:] >= 128).all()


def test_each_frame_uses_its_bracketing_anchors():
    assert bracketing_anchors(1, [0, 3, 5]) == [0, 3]  # nearer first
    assert bracketing_anchors(4, [5, 0, 3]) == [3, 5]  # a tie: the earlier first
    assert bracketing_anchors(2, [0, 3, 5]) == [3, 0]
    assert bracketing_anchors(7, [0, 3, 5]) == [5] and bracketing_anchors(3, [0, 3, 5]) == [3]


def test_identical_frames_have_perfect_fidelity(models):
    frames, depth, c2w = sideways_dolly(5)
    scores = fidelity(frames, {0: frames[0], 4: frames[4]}, depth, c2w, INTRINSICS, models.lpips)
    assert scores["psnr"] == math.inf  # uncapped, as torchmetrics
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert scores["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert scores["num_scored_frames"] == 3 and scores["known_fraction"] == 1.0
    noisy = frames.copy()
    noisy[2] = np.clip(noisy[2].astype(int) + 20, 0, 255).astype(np.uint8)
    worse = fidelity(noisy, {0: frames[0], 4: frames[4]}, depth, c2w, INTRINSICS, models.lpips)
    assert math.isinf(worse["psnr"])  # two of the three frames are still perfect: the mean stays +inf
    assert worse["ssim"] < 1 and worse["lpips"] > 0


def test_fidelity_without_overlap_is_nan(models):
    frames, depth, c2w = sideways_dolly(3)
    c2w[2, 0, 3] = 100.0  # the last anchor looks at a far-away part of the plane; anchor 0 is dropped
    scores = fidelity(frames, {2: frames[2]}, depth, c2w, INTRINSICS, models.lpips)
    assert scores["num_scored_frames"] == 0 and math.isnan(scores["psnr"])
    with pytest.raises(ValueError, match="intrinsics"):
        fidelity(frames, {2: frames[2]}, depth, c2w, INTRINSICS.scaled_to(32, 24), models.lpips)


def reference_ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM [Wang et al. 2004] of (H, W, C) images in [0, 1], written independently of torchmetrics: scipy's
    Gaussian (sigma 1.5, 11 taps) with mirrored borders (torch's 'reflect'), K1 = 0.01, K2 = 0.03."""
    from scipy.ndimage import gaussian_filter

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=(1.5, 1.5, 0), truncate=3.5, mode="mirror")

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x ** 2, blur(y * y) - mu_y ** 2, blur(x * y) - mu_x * mu_y
    return (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def test_fidelity_scores_only_the_known_region_of_a_partial_pseudo_gt(models):
    """Issue 22, 3 (paper Sec. 4.2: "compute the metrics only on the known regions"). With anchor 0 alone,
    frames 1-3 know 60, 56 and 52 of their 64 columns (known fraction 168/192 = 0.875). The video is its
    pseudo-GT plus exactly d levels where known and random where not: PSNR is 20 log10(255 / d) by hand, SSIM
    equals an independent implementation averaged over the known pixels (unknown pixels 0 in both images), and
    a video equal to its pseudo-GT where known scores PSNR +inf, SSIM 1, LPIPS 0 whatever it holds elsewhere."""
    frames, depth, c2w = sideways_dolly(4, seed=3)
    base = frames // 2 + 64  # 64..191: +d never clips
    rng, d = np.random.default_rng(4), 10
    offset, exact = base.copy(), base.copy()
    known = np.zeros((4, H, W), bool)
    for i in (1, 2, 3):
        known[i, :, : W - i * SHIFT] = True
        garbage = rng.integers(0, 256, (H, i * SHIFT, 3), dtype=np.uint8)
        offset[i][known[i]] += d
        offset[i][~known[i]] = garbage.reshape(-1, 3)
        exact[i][~known[i]] = garbage.reshape(-1, 3)
    scores = fidelity(offset, {0: base[0]}, depth, c2w, INTRINSICS, models.lpips)
    assert scores["known_fraction"] == pytest.approx(168 / 192) and scores["num_scored_frames"] == 3
    assert scores["psnr"] == pytest.approx(20 * math.log10(255 / d))
    expected_ssim = []
    for i in (1, 2, 3):
        mask = known[i][..., None]
        ssim_map = reference_ssim_map(offset[i] / 255.0 * mask, base[i] / 255.0 * mask)
        expected_ssim.append(ssim_map[known[i]].mean())
    assert scores["ssim"] == pytest.approx(np.mean(expected_ssim), abs=1e-5)
    # LPIPS: the network's spatial map of the zero-masked pair, averaged over the known pixels only
    expected_lpips = []
    for i in (1, 2, 3):
        mask = torch.from_numpy(known[i])
        pair = [torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 * mask for image in (offset[i], base[i])]
        with torch.no_grad():
            spatial = models.lpips(*pair, normalize=True)[0, 0]
        expected_lpips.append(float(spatial[mask].mean()))
    assert scores["lpips"] == pytest.approx(np.mean(expected_lpips), rel=1e-5)
    perfect = fidelity(exact, {0: base[0]}, depth, c2w, INTRINSICS, models.lpips)
    assert perfect["psnr"] == math.inf and perfect["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["lpips"] == pytest.approx(0.0, abs=1e-7)


def test_histogram_equalisation_by_hand():
    x = np.array([[3.0, 1.0, 7.0], [2.0, 2.0, np.inf]])
    mask = np.isfinite(x) & (x < 5)
    # values 1, 2, 2, 3 -> ranks 0, 1.5, 1.5, 3 (ties share the mean) over 3; outside the mask 0
    np.testing.assert_allclose(histogram_equalise(x, mask), [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(histogram_equalise(np.exp(np.minimum(x, 9)), mask), histogram_equalise(x, mask))
    assert histogram_equalise(np.ones((2, 2)), np.ones((2, 2), bool)).tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_psnr_d_is_invariant_to_monotone_rescaling():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 20, (3, H, W))
    depth[:, :5] = np.inf  # sky: not scored
    inverse = np.where(np.isfinite(depth), 1 / depth, 0)
    assert psnr_d_from_disparity(3 * inverse ** 2 + 7, depth) == math.inf  # a perfect estimate, any monotone scale
    estimate = inverse + rng.normal(0, 0.02, inverse.shape)  # a fake estimator: disparity with noise
    score = psnr_d_from_disparity(estimate, depth)
    assert 5 < score < 40
    assert psnr_d_from_disparity(np.exp(5 * estimate) - 1, depth) == pytest.approx(score, abs=1e-9)
    assert psnr_d_from_disparity(-estimate, depth) < score - 5  # depth instead of disparity is penalised


def test_psnr_d_by_hand_and_against_an_independent_computation():
    """Issue 22, 3. By hand: depths 1, 2, 4 (and sky) -> inverse depths 1, .5, .25 -> ranks 1, .5, 0; the
    estimate .9, .2, .5 -> ranks 1, 0, .5; squared differences 0, .25, .25 -> MSE 1/6 -> PSNR 10 log10 6.
    Scored 'farthest' (sky included as the farthest, estimate 7 there): ranks over 4 pixels, MSE 7/18.
    Then random frames with ties against scipy's `rankdata` (average ranks) and numpy's PSNR."""
    from scipy.stats import rankdata

    depth = np.array([[[1.0, 2.0, 4.0, np.inf]]])
    estimate = np.array([[[0.9, 0.2, 0.5, 7.0]]])
    assert psnr_d_from_disparity(estimate, depth) == pytest.approx(10 * math.log10(6))
    assert psnr_d_from_disparity(estimate, depth, "farthest") == pytest.approx(10 * math.log10(18 / 7))
    rng = np.random.default_rng(6)
    depth = rng.choice([2.0, 3.0, 5.0, 8.0, np.inf], (3, 12, 16))  # few levels: many ties
    estimate = np.round(rng.uniform(0, 1, depth.shape), 1)
    scores = []
    for est, dep in zip(estimate, depth):
        valid = np.isfinite(dep)
        a, b = rankdata(est[valid]) - 1, rankdata(1 / dep[valid]) - 1
        mse = np.mean(((a - b) / (valid.sum() - 1)) ** 2)
        scores.append(-10 * math.log10(mse))
    # torchmetrics' PSNR (`masked_psnr`) rounds to float32: 1e-7 relative
    assert psnr_d_from_disparity(estimate, depth) == pytest.approx(np.mean(scores), rel=1e-6)


def test_psnr_d_background_as_farthest_penalises_invented_structure():
    rng = np.random.default_rng(5)
    depth = rng.uniform(1, 20, (2, H, W))
    depth[:, :12] = np.inf  # sky
    inverse = np.where(np.isfinite(depth), 1 / depth, 0)
    assert psnr_d_from_disparity(inverse, depth, "farthest") == math.inf  # sky estimated as the farthest: perfect
    invented = inverse.copy()
    invented[:, :12] = rng.uniform(0.5, 1.0, (2, 12, W))  # the estimate sees near structure in the sky
    assert psnr_d_from_disparity(invented, depth) == math.inf  # the paper's reading never looks there
    assert psnr_d_from_disparity(invented, depth, "farthest") < 15
    with pytest.raises(ValueError, match="background='sky'"):
        psnr_d_from_disparity(inverse, depth, "sky")


def test_geometric_flicker_is_zero_for_a_perfect_reprojection_and_grows_with_flicker():
    """An integer pan needs no resampling: 0 (and +inf); a brightness offset alternating per frame is
    blotchy flicker at its simplest, every low-passed difference exactly 2d (`evaluation.flicker`)."""
    frames, depth, c2w = sideways_dolly(6, seed=7)
    perfect = geometric_flicker(frames, depth, c2w, INTRINSICS)
    assert perfect["flicker_mae"] == 0.0 and perfect["flicker_psnr"] == math.inf
    # each pair sees the plane shifted SHIFT px: the first SHIFT columns of frame i leave frame i+1's view, and
    # frame i is sampled SHIFT / 2 px further on, so the last SHIFT / 2 columns' sample points leave frame i
    assert perfect["flicker_valid_fraction"] == pytest.approx((W - 1.5 * SHIFT) / W)
    assert len(perfect["flicker_per_pair"]) == 5
    # a brightness offset of +-d levels alternating per frame: every valid pixel differs by exactly 2d
    base = frames // 2 + 64  # 64..191: the offsets below never clip
    for d in (2, 5, 10):
        flickering = (base.astype(int) + d * np.array([1, -1] * 3)[:, None, None, None]).astype(np.uint8)
        result = geometric_flicker(flickering, depth, c2w, INTRINSICS)
        assert result["flicker_mae"] == pytest.approx(2 * d)
        assert result["flicker_per_pair"] == pytest.approx([2 * d] * 5)
        assert result["flicker_psnr"] == pytest.approx(-20 * math.log10(2 * d / 255))
    static = np.repeat(frames[:1], 6, axis=0)  # the texture does not move with the camera: it swims
    assert geometric_flicker(static, depth, c2w, INTRINSICS)["flicker_mae"] > 5  # 9.9: white noise, low-passed


def test_vbench_consistency_by_hand():
    assert vbench_consistency(torch.ones(5, 8)) == pytest.approx(1.0)
    features = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-0.6, 0.8]]) * torch.tensor([[2.0], [1.0], [3.0]])
    # t=1: cos to first 0.6, to previous 0.6 -> 0.6; t=2: to first -0.6 -> 0, to previous 0.28 -> 0.14
    assert vbench_consistency(features) == pytest.approx((0.6 + 0.14) / 2)
    assert vbench_consistency(features[:1]) == 1.0


def test_constant_video_is_perfectly_consistent(models):
    frames = np.repeat(np.random.default_rng(1).integers(0, 256, (1, H, W, 3), dtype=np.uint8), 4, axis=0)
    assert subject_consistency(frames, models.dino) == pytest.approx(1.0, abs=1e-6)
    assert background_consistency(frames, models.clip_b32) == pytest.approx(1.0, abs=1e-6)


def openai_clip_embeddings(images: list[np.ndarray], clip_model: torch.nn.Module) -> torch.Tensor:
    """Unnormalised CLIP image embeddings through transformers' `CLIPImageProcessorPil` (OpenAI CLIP's
    `preprocess`, `tests/test_metric_references.py`), independent of `evaluation.features`."""
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    size = clip_model.config.image_size
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    with torch.no_grad():
        pixels = processor(images=[Image.fromarray(i) for i in images], return_tensors="pt").pixel_values
        return clip_model(pixel_values=pixels).image_embeds


def scaled_projection(clip_model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """A copy of the CLIP model whose embeddings are `factor` times longer, same directions."""
    import copy

    scaled = copy.deepcopy(clip_model)
    scaled.visual_projection.weight.data *= factor
    return scaled


def test_clip_i_is_the_mean_cosine_of_each_frame_to_the_reference(models):
    """Issue 22, 3 (paper Sec. 4.2: "CLIP image similarity with the reference style image"): equal to the
    cosines of independently computed embeddings, 1 for a video of the reference itself, and unchanged when
    the embeddings are scaled (they are normalised)."""
    rng = np.random.default_rng(8)
    frames = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    reference = rng.integers(0, 256, (70, 50, 3), dtype=np.uint8)  # portrait, another size
    embeddings = openai_clip_embeddings([*frames, reference], models.clip_l14)
    expected = torch.nn.functional.cosine_similarity(embeddings[:3], embeddings[3:], dim=-1).mean()
    score = clip_image_similarity(frames, reference, models.clip_l14)
    assert score == pytest.approx(float(expected), abs=1e-5)
    assert clip_image_similarity(np.stack([reference] * 2), reference, models.clip_l14) == pytest.approx(1, abs=1e-6)
    assert clip_image_similarity(frames, reference, scaled_projection(models.clip_l14, 5.0)) == pytest.approx(score,
                                                                                                              abs=1e-6)


def test_the_aesthetic_head_reads_normalised_embeddings(models):
    """Issue 22, 3: LAION's predictor and VBench feed the head `image_features / norm`. CLIP-A equals the head
    on independently computed, normalised embeddings, and does not move when the embeddings are scaled 5x
    (the linear head's output would scale with them)."""
    torch.manual_seed(3)
    head = LinearAestheticHead().eval()
    frames = np.random.default_rng(9).integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    embeddings = torch.nn.functional.normalize(openai_clip_embeddings(list(frames), models.clip_l14), dim=-1)
    with torch.no_grad():
        expected = float(head(embeddings).mean())
    assert clip_aesthetic(frames, models.clip_l14, head) == pytest.approx(expected, abs=1e-5)
    assert clip_aesthetic(frames, scaled_projection(models.clip_l14, 5.0), head) == pytest.approx(expected, abs=1e-5)


def test_aesthetic_heads_match_their_released_layouts(tmp_path):
    mlp = MLPAestheticHead()
    shapes = {key: tuple(value.shape) for key, value in mlp.state_dict().items()}
    assert shapes == {"layers.0.weight": (1024, 768), "layers.0.bias": (1024,), "layers.2.weight": (128, 1024),
                      "layers.2.bias": (128,), "layers.4.weight": (64, 128), "layers.4.bias": (64,),
                      "layers.6.weight": (16, 64), "layers.6.bias": (16,), "layers.7.weight": (1, 16),
                      "layers.7.bias": (1,)}
    # LAION-AI/aesthetic-predictor's file is the state dict of nn.Linear(768, 1), as VBench loads it
    linear = torch.nn.Linear(768, 1)
    assert {k: tuple(v.shape) for k, v in LinearAestheticHead().state_dict().items()} == {"weight": (1, 768),
                                                                                            "bias": (1,)}
    torch.save(linear.state_dict(), tmp_path / AESTHETIC_HEADS["laion_linear"].file)
    torch.save(mlp.state_dict(), tmp_path / AESTHETIC_HEADS["improved_mlp"].file)
    x = torch.nn.functional.normalize(torch.randn(3, 768), dim=-1)
    loaded = load_aesthetic_head(tmp_path / AESTHETIC_HEADS["laion_linear"].file, "laion_linear")
    torch.testing.assert_close(loaded(x), linear(x)[:, 0])
    loaded = load_aesthetic_head(tmp_path / AESTHETIC_HEADS["improved_mlp"].file, "improved_mlp")
    torch.testing.assert_close(loaded(x), mlp.eval()(x))
    # each file is refused as the other head: the record can never name the wrong one
    with pytest.raises(ValueError, match="not the laion_linear aesthetic head"):
        load_aesthetic_head(tmp_path / AESTHETIC_HEADS["improved_mlp"].file, "laion_linear")
    with pytest.raises(ValueError, match="not the improved_mlp aesthetic head"):
        load_aesthetic_head(tmp_path / AESTHETIC_HEADS["laion_linear"].file, "improved_mlp")


def test_full_metrics_default_to_the_linear_laion_head(tmp_path):
    from evaluation.published import write_full_metric_layout

    folder = write_full_metric_layout(tmp_path / "metrics")
    models = full_metric_models(folder, hf_cache=tmp_path / "hf")
    assert models.aesthetic_head_name == "laion_linear" and isinstance(models.aesthetic_head, LinearAestheticHead)
    assert models.model_ids["aesthetic_head"].startswith("LAION-AI/aesthetic-predictor laion_linear")
    models = full_metric_models(folder, hf_cache=tmp_path / "hf", aesthetic_head="improved_mlp")
    assert isinstance(models.aesthetic_head, MLPAestheticHead)
    assert "christophschuhmann/improved-aesthetic-predictor" in models.model_ids["aesthetic_head"]


def test_evaluate_video_tiny(models):
    frames, depth, c2w = sideways_dolly(6, seed=2)
    video = frames.copy()
    video[1:5] = np.clip(video[1:5].astype(int) + np.random.default_rng(3).integers(-30, 30, video[1:5].shape),
                         0, 255).astype(np.uint8)
    reference = np.random.default_rng(4).integers(0, 256, (80, 60, 3), dtype=np.uint8)
    result = evaluate_video(video, {0: frames[0], 5: frames[5]}, reference, depth, c2w, INTRINSICS, models)
    assert all(math.isfinite(result[name]) for name in METRICS), result
    assert result["profile"] == "tiny" and set(result["model_ids"]) >= {"clip_l14", "dino", "musiq", "depth"}
    assert result["num_frames"] == 6 and result["num_scored_frames"] == 4


def test_paper_table2_as_printed():
    assert list(PAPER_TABLE2) == ["Depth-I2V", "VACE", "SAG + MVSplat360", "SAG + LVSM", "SAG + SEVA",
                                  "SAG + GGI (Ours)"]
    assert PAPER_TABLE2["SAG + GGI (Ours)"] == dict(zip(TABLE2_METRICS, (16.739, 0.554, 0.236, 19.754, 6.730, 68.615,
                                                                        0.840, 0.891, 0.942)))
    assert PAPER_TABLE2["VACE"]["psnr"] is None and PAPER_TABLE2["VACE"]["background_consistency"] == 0.914


def test_full_models_missing_weights_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(MissingWeightsError) as error:
        full_metric_models(tmp_path / "weights", hf_cache=tmp_path / "hf")
    components = [component for component, _ in error.value.missing]
    assert len(components) == 7
    for name in ("CLIP ViT-L/14", "aesthetic", "CLIP ViT-B/32", "DINO", "AlexNet", "MUSIQ", "depth"):
        assert any(name in component for component in components), name
    assert all(str(tmp_path / "weights") in " ".join(looked_at) for _, looked_at in error.value.missing)


def test_full_loaders_read_local_files(tmp_path):
    """The full profile's loaders on small checkpoints saved in the real formats."""
    from torchvision.models import alexnet
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    clip = CLIPModel(CLIPConfig(text_config=dict(small, vocab_size=99, bos_token_id=0, eos_token_id=1),
                                vision_config=dict(small, image_size=32, patch_size=8), projection_dim=24))
    clip.save_pretrained(tmp_path / "clip")  # a whole CLIPModel, as the hub repos hold
    vision = load_clip_vision(tmp_path / "clip")
    pixels = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = clip.get_image_features(pixel_values=pixels)
        expected = expected if torch.is_tensor(expected) else expected.pooler_output
        torch.testing.assert_close(vision(pixel_values=pixels).image_embeds, expected)

    trunk = alexnet(weights=None)
    torch.save(trunk.state_dict(), tmp_path / "alexnet.pth")
    lpips = lpips_network(tmp_path / "alexnet.pth")
    torch.testing.assert_close(lpips.net.slice3.get_submodule("6").weight, trunk.features[6].weight)

    musiq = load_musiq(None, **TINY_MUSIQ)
    torch.save(musiq.net.state_dict(), tmp_path / "musiq.pth")
    loaded = load_musiq(tmp_path / "musiq.pth", **TINY_MUSIQ)
    image = torch.rand(1, 3, H, W)
    torch.testing.assert_close(loaded(image), musiq(image))
