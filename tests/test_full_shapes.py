"""The `full` profile at its real shapes, on the CPU: the published configs of FLUX.1-dev, XLabs' HED ControlNet
and CogVideoX-5b-I2V (depth and width shrunk, every shape-deciding field kept; `vf3d.models.published`) written
in the distributed on-disk layout, loaded by the real loaders, run through the stages at 720x480 and 49 frames."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from dagster import materialize
from PIL import Image

from resources import GPU, ArtifactStore, ModelStore
from evaluation.published import write_full_metric_layout
from vf3d.ggi.pipeline import GGI_PRESETS, GGIPipeline
from vf3d.models.hed import HED_FILENAME, hed_network_class
from vf3d.models.published import PUBLISHED, write_full_layout
from vf3d.sag.sampling import SAG_PRESETS, SAGPipeline

H, W = 480, 720


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A user's weights folder: the three diffusers folders, the Go-with-the-Flow LoRA file, HED and metrics/."""
    folder = tmp_path_factory.mktemp("full-weights")
    write_full_layout(folder, "shrunk")
    torch.manual_seed(0)
    torch.save(hed_network_class()().state_dict(), folder / HED_FILENAME)
    write_full_metric_layout(folder / "metrics", "shrunk")
    return folder


@pytest.fixture
def resources(weights, tmp_path):
    return {"artifacts": ArtifactStore(root=str(tmp_path / "artifacts")), "gpu": GPU(device="cpu"),
            "models": ModelStore(profile="full", weights_dir=str(weights))}


def test_an_anchor_view_at_720x480_packs_the_paper_token_grid(resources):
    """FLUX at 720x480: 16 latent channels packed 2x2 = 64 features on a 45 x 30 = 1,350-token grid."""
    pipe = resources["models"].flux(torch.float32).pipeline()
    pipe.set_progress_bar_config(disable=True)
    seen = []
    pipe.transformer.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["hidden_states"].shape),
                                               with_kwargs=True)
    control = Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8))
    result = SAGPipeline(pipe)("a stone house", control, H, W, generator=torch.Generator().manual_seed(0),
                               settings=replace(SAG_PRESETS["paper"], num_inference_steps=2))
    assert result.image.size == (W, H)
    assert seen[0] == (1, 1350, PUBLISHED["flux_transformer"]["in_channels"])
    assert len(seen) == 3  # true CFG from step 1 (x-flux's timestep_to_start_cfg): cond, cond, uncond


def test_the_video_prompt_is_a_blip2_caption_of_a_720x480_anchor(resources):
    """BLIP-2 OPT-2.7b's architecture (224 px, 32 query tokens) from its folder, captioning a full-size anchor."""
    captioner = resources["models"].captioner(torch.device("cpu"), torch.float32)
    assert captioner.model.config.num_query_tokens == 32 and captioner.model.config.vision_config.image_size == 224
    anchor = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    caption = captioner(anchor)
    assert isinstance(caption, str) and caption == captioner(anchor)  # greedy: the same caption each time


def test_style_lora_trains_at_the_paper_resolution_and_loads_into_the_full_pipeline(resources):
    from vf3d.sag.style_lora import load_style_lora
    from vf3d_assets.assets.sag import style_lora

    result = materialize([style_lora], partition_key="test_style", resources=resources,
                         run_config={"ops": {"style_lora": {"config": {"steps": 1}}}})
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["profile"].value == "full" and metadata["steps"].value == 1
    assert np.isfinite(metadata["last_loss"].value)
    pipe = resources["models"].flux(torch.float32).pipeline()
    load_style_lora(pipe, resources["artifacts"].path("style_lora", "test_style"))
    assert pipe.transformer.peft_config and pipe.controlnet.peft_config


def _training_clip(width: int, height: int, frames: int = 49):
    """A clip as `ggi_training_set` writes it: smooth frames panning right by 2 px per frame, exact flows."""
    from vf3d.ggi.training import TrainingClip

    x, y = np.meshgrid(np.arange(width + 2 * frames), np.arange(height))
    base = np.stack([(x * 0.7) % 256, (y * 0.5) % 256, ((x + y) * 0.3) % 256], -1).astype(np.uint8)
    images = [np.ascontiguousarray(base[:, 2 * k:2 * k + width]) for k in range(frames)]
    flows = np.zeros((frames - 1, height, width, 2), np.float32)
    flows[..., 0] = -2.0
    structure = [np.asarray(Image.fromarray(f).convert("L")) for f in images]
    return TrainingClip(images, flows, np.ones(flows.shape[:3], bool), structure, "a test video")


def test_the_training_set_defaults_to_the_transformers_own_size(resources):
    """CogVideoX-5b-I2V's learned positional embeddings accept 720x480 only (the old 96x64 default failed)."""
    from vf3d_assets.assets.ggi import TrainingSetConfig, training_clip_size

    assert resources["models"].ggi_sample_size() == (720, 480)
    assert training_clip_size(TrainingSetConfig(), resources["models"]) == (720, 480)
    assert training_clip_size(TrainingSetConfig(width=96, height=64), resources["models"]) == (96, 64)


def test_ggi_weights_train_at_720x480_49_frames_and_a_segment_samples_with_them(resources):
    """One training step through the `ggi_weights` asset on a 720x480 clip, then a 49-frame segment with those
    weights through the real loader; a 96x64 training set fails before training, naming both sizes."""
    from vf3d.ggi.training import save_clip
    from vf3d_assets.assets.ggi import ggi_weights

    clips = resources["artifacts"].path("ggi_training_set", "all")
    save_clip(_training_clip(W, H), clips / "video_00000")
    # the shapes are under test here; the official 4x noise field takes minutes per step at 720x480 on a CPU, and
    # the training noise itself is tested at small sizes (test_ggi_training.py); 2 clips per step, not the paper's
    # 16, still run the accumulation
    one_step = {"ops": {"ggi_weights": {"config": {"steps": 1, "noise_warp": "video_rate", "gradient_accumulation": 2}}}}
    result = materialize([ggi_weights], resources=resources, run_config=one_step)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["profile"].value == "full" and np.isfinite(metadata["eval_loss_after"].value)

    components = resources["models"].ggi(torch.float32, resources["artifacts"].path("ggi_weights", "all") /
                                         "ggi_weights.safetensors")
    ggi = GGIPipeline(components)
    ggi.set_progress_bar_config(disable=True)
    edges = [np.random.default_rng(10 + i).integers(0, 256, (H, W), dtype=np.uint8) for i in range(46)]
    first, last = (np.random.default_rng(k).integers(0, 256, (H, W, 3), dtype=np.uint8) for k in (1, 2))
    video = ggi("a stone house", first, last, edges, H, W, generator=torch.Generator().manual_seed(0),
                settings=replace(GGI_PRESETS["paper"], num_inference_steps=1))
    assert np.asarray(video.frames).shape == (46, H, W, 3)

    save_clip(_training_clip(96, 64), clips / "video_00000")
    failed = materialize([ggi_weights], resources=resources, raise_on_error=False, run_config=one_step)
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    message = str(failure.step_failure_data.error)
    assert "height=64, width=96" in message and "480x720" in message


def test_metrics_of_a_720x480_segment_with_the_full_metric_networks(resources):
    """Every Table 2 metric through the full loaders (`ModelStore.metric_models`): CLIP at 224 px (L/14 projecting
    to the aesthetic head's 768), DINO, the DPT at 384 px, torchvision AlexNet under LPIPS, pyiqa's MUSIQ."""
    from evaluation.metrics import METRICS, evaluate_video
    from vf3d.preprocess.camera import Intrinsics

    models = resources["models"].metric_models(torch.device("cpu"), torch.float32)
    frames = np.stack(_training_clip(W, H, frames=6).frames)  # a 2 px/frame pan of a plane 5 units away
    intrinsics = Intrinsics(W, H, fx=500.0, fy=500.0, cx=W / 2, cy=H / 2)
    c2w = np.tile(np.eye(4), (6, 1, 1))
    c2w[:, 0, 3] = np.arange(6) * 2 * 5.0 / 500.0
    result = evaluate_video(frames, {0: frames[0], 5: frames[5]}, frames[0], np.full((6, H, W), 5.0, np.float32),
                            c2w, intrinsics, models)
    assert result["profile"] == "full" and result["num_frames"] == 6
    # a perfect re-projection: PSNR and flicker PSNR are +inf, flicker MAE 0
    assert all(np.isfinite(result[m]) for m in METRICS if m not in ("psnr", "flicker_psnr"))
    assert result["flicker_mae"] == 0 and result["aesthetic_head"] == "laion_linear"
    assert "metrics/clip-vit-large-patch14" in result["model_ids"]["clip_l14"]
